package jwks_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth/internal/jwks"
	"github.com/ourway/auth/internal/jwks/jwkstest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newSet(t *testing.T, url string, clk *clock, opts ...func(*jwks.Options)) *jwks.Set {
	t.Helper()
	o := jwks.Options{URL: url, Logger: quiet, Now: clk.now}
	for _, f := range opts {
		f(&o)
	}
	s, err := jwks.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValidateURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://idp.example.com/.well-known/jwks.json", true},
		{"http://127.0.0.1:8080/jwks", true},
		{"http://localhost/jwks", true},
		{"http://[::1]:9/jwks", true},
		{"http://idp.example.com/jwks", false},
		{"http://10.0.0.1/jwks", false},
		{"ftp://idp.example.com/jwks", false},
		{"https://user:pass@idp.example.com/jwks", false},
		{"https://idp.example.com/jwks#frag", false},
		{"/jwks", false},
		{"https:///jwks", false},
		{"://", false},
	} {
		if err := jwks.ValidateURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("ValidateURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
	if _, err := jwks.New(jwks.Options{URL: "http://idp.example.com/jwks"}); err == nil {
		t.Error("New accepted a plain-http URL to a remote host")
	}
}

func TestParse(t *testing.T) {
	rsaK := jwkstest.NewKey(t, "rsa", "r")
	ecK := jwkstest.NewKey(t, "ec", "e")
	edK := jwkstest.NewKey(t, "ed", "d")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	good := jwkstest.JWK(rsaK)
	ec := jwkstest.JWK(ecK)
	offCurve := with(ec, "y", base64.RawURLEncoding.EncodeToString(make([]byte, 32)))
	for _, tc := range []struct {
		name string
		key  map[string]any
		kty  string // "" : skipped
	}{
		{"rsa", good, "RSA"},
		{"ec p-256", ec, "EC"},
		{"ec p-384", jwkstest.PublicJWK("x", p384.Public()), "EC"},
		{"ed25519", jwkstest.JWK(edK), "OKP"},
		{"no use", with(good, "use", nil), "RSA"},
		{"symmetric", map[string]any{"kty": "oct", "kid": "k", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}, ""},
		{"encryption key", with(good, "use", "enc"), ""},
		{"no kid", with(good, "kid", nil), ""},
		{"private part", with(good, "d", "AQAB"), ""},
		{"rsa 1024", jwkstest.PublicJWK("s", small.Public()), ""},
		{"rsa exponent 1", with(good, "e", "AQ"), ""},
		{"rsa padded base64", with(good, "e", "AQAB=="), ""},
		{"ec off the curve", offCurve, ""},
		{"ec short x", with(ec, "x", "AQAB"), ""},
		{"ec unknown curve", with(ec, "crv", "secp256k1"), ""},
		{"okp x448", with(jwkstest.JWK(edK), "crv", "Ed448"), ""},
		{"okp short", with(jwkstest.JWK(edK), "x", "AQAB"), ""},
		{"unknown kty", with(good, "kty", "RSA-PSS"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"keys": []any{tc.key, jwkstest.JWK(jwkstest.Key{ID: "anchor", Private: edK.Private})}})
			keys, err := jwks.Parse(body, quiet)
			if err != nil {
				t.Fatal(err)
			}
			kid, _ := tc.key["kid"].(string)
			k, ok := keys[kid]
			if tc.kty == "" {
				if ok && kid != "" {
					t.Errorf("key kept: %+v", k)
				}
				if len(keys) != 1 {
					t.Errorf("%d keys kept, want only the anchor", len(keys))
				}
				return
			}
			if !ok || k.Kty != tc.kty {
				t.Errorf("key %q: %+v (found %v), want kty %s", kid, k, ok, tc.kty)
			}
		})
	}
	t.Run("duplicate kid drops both", func(t *testing.T) {
		body, _ := json.Marshal(map[string]any{"keys": []any{
			jwkstest.JWK(rsaK), jwkstest.JWK(jwkstest.Key{ID: "r", Private: ecK.Private}), jwkstest.JWK(edK)}})
		keys, err := jwks.Parse(body, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := keys["r"]; ok || len(keys) != 1 {
			t.Errorf("keys %v: want only d", keys)
		}
	})
	for _, body := range []string{`{"keys":[]}`, `{}`, `[]`, `not json`, `{"keys":[{"kty":"oct","kid":"a","k":"AA"}]}`} {
		if _, err := jwks.Parse([]byte(body), quiet); err == nil {
			t.Errorf("Parse(%s): no error", body)
		}
	}
}

// TestKeyFitsAlgorithm: a key serves only the algorithms of its type (and
// curve), and only its declared alg when it declares one.
func TestKeyFitsAlgorithm(t *testing.T) {
	idp := jwkstest.New(t)
	declared := jwkstest.NewKey(t, "rsa", "rsa-ps")
	declared.Alg = "PS256"
	idp.Publish(idp.RSA, idp.EC, idp.Ed, declared)
	set := newSet(t, idp.URL(), &clock{t: time.Now()})
	for _, tc := range []struct {
		kid, alg string
		ok       bool
	}{
		{"rsa-1", "RS256", true}, {"rsa-1", "RS512", true}, {"rsa-1", "PS256", true},
		{"rsa-1", "ES256", false}, {"rsa-1", "EdDSA", false}, {"rsa-1", "HS256", false}, {"rsa-1", "none", false},
		{"ec-1", "ES256", true}, {"ec-1", "ES384", false}, {"ec-1", "RS256", false}, {"ec-1", "HS256", false},
		{"ed-1", "EdDSA", true}, {"ed-1", "ES256", false}, {"ed-1", "RS256", false},
		{"rsa-ps", "PS256", true}, {"rsa-ps", "RS256", false},
	} {
		_, err := set.Key(context.Background(), tc.kid, tc.alg)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, jwks.ErrKeyMismatch) {
			t.Errorf("Key(%s, %s) = %v, want ok %v", tc.kid, tc.alg, err, tc.ok)
		}
	}
	if n := idp.Fetches(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

// TestRotation: a new kid at the provider is fetched once; unknown kids
// refresh at most once per MinRefresh; a known kid never refetches.
func TestRotation(t *testing.T) {
	idp := jwkstest.New(t)
	clk := &clock{t: time.Now()}
	set := newSet(t, idp.URL(), clk, func(o *jwks.Options) { o.MinRefresh = 10 * time.Second })
	ctx := context.Background()
	if _, err := set.Key(ctx, "rsa-1", "RS256"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := set.Key(ctx, "rsa-1", "RS256"); err != nil {
			t.Fatal(err)
		}
		if _, err := set.Key(ctx, "nope", "RS256"); !errors.Is(err, jwks.ErrUnknownKey) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := idp.Fetches(); n != 1 {
		t.Fatalf("%d fetches after 20 unknown kids within MinRefresh, want 1", n)
	}
	// The provider rotates: a new key appears, the old one goes.
	next := jwkstest.NewKey(t, "ec", "ec-2")
	idp.Publish(next, idp.Ed)
	if _, err := set.Key(ctx, "ec-2", "ES256"); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Fatalf("new kid within MinRefresh: %v, want ErrUnknownKey", err)
	}
	clk.add(10 * time.Second)
	if _, err := set.Key(ctx, "ec-2", "ES256"); err != nil {
		t.Fatalf("new kid after MinRefresh: %v", err)
	}
	if n := idp.Fetches(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	if _, err := set.Key(ctx, "rsa-1", "RS256"); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Errorf("a key withdrawn by the provider still serves: %v", err)
	}
	for i := 0; i < 5; i++ {
		if _, err := set.Key(ctx, "ec-2", "ES256"); err != nil {
			t.Fatal(err)
		}
	}
	if n, m := idp.Fetches(), set.Fetches(); n != 2 || m != 2 {
		t.Errorf("fetches: provider %d, set %d, want 2", n, m)
	}
}

// TestConcurrentMissesShareOneFetch: many requests with a new kid at once
// cause one fetch, and every one of them gets the key.
func TestConcurrentMissesShareOneFetch(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	idp := jwkstest.New(t)
	var fetches sync.Map
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Store(time.Now().UnixNano(), true)
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		resp, err := http.Get(idp.URL())
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(gate.Close)
	set := newSet(t, gate.URL, &clock{t: time.Now()})
	const n = 50
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := set.Key(context.Background(), "ed-1", "EdDSA")
			errs <- err
		}()
	}
	<-entered
	close(release)
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	count := 0
	fetches.Range(func(any, any) bool { count++; return true })
	if count != 1 || idp.Fetches() != 1 {
		t.Errorf("%d fetches for %d concurrent misses, want 1", count, n)
	}
}

// TestFailedFetchKeepsKeys: a failed fetch (error status, oversized body,
// garbage, timeout) keeps the last good keys; before any good fetch the
// set is unavailable.
func TestFailedFetchKeepsKeys(t *testing.T) {
	var (
		mu   sync.Mutex
		mode = "ok"
	)
	idp := jwkstest.New(t)
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		m := mode
		mu.Unlock()
		switch m {
		case "500":
			http.Error(w, "down", 500)
		case "big":
			_, _ = w.Write([]byte(`{"keys":[` + strings.Repeat(" ", 2048) + `]}`))
		case "garbage":
			_, _ = w.Write([]byte(`<html>`))
		case "hang":
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		default:
			resp, err := http.Get(idp.URL())
			if err != nil {
				http.Error(w, err.Error(), 502)
				return
			}
			defer resp.Body.Close()
			_, _ = io.Copy(w, resp.Body)
		}
	}))
	t.Cleanup(srv.Close)
	set := func(m string) {
		mu.Lock()
		mode = m
		mu.Unlock()
	}
	clk := &clock{t: time.Now()}
	s := newSet(t, srv.URL, clk, func(o *jwks.Options) {
		o.MaxBytes = 1024
		o.Timeout = 200 * time.Millisecond
	})
	ctx := context.Background()
	set("500")
	if _, err := s.Key(ctx, "rsa-1", "RS256"); !errors.Is(err, jwks.ErrUnavailable) {
		t.Fatalf("before any good fetch: %v, want ErrUnavailable", err)
	}
	set("ok")
	clk.add(time.Minute)
	if _, err := s.Key(ctx, "rsa-1", "RS256"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"500", "big", "garbage", "hang"} {
		set(m)
		clk.add(time.Minute)
		if _, err := s.Key(ctx, "unknown", "RS256"); !errors.Is(err, jwks.ErrUnknownKey) {
			t.Errorf("%s: unknown kid: %v", m, err)
		}
		if _, err := s.Key(ctx, "rsa-1", "RS256"); err != nil {
			t.Errorf("%s: the last good key is gone: %v", m, err)
		}
	}
}

// TestRedirectNotFollowed: the keys come from the configured address only.
func TestRedirectNotFollowed(t *testing.T) {
	idp := jwkstest.New(t)
	srv := httptest.NewServer(http.RedirectHandler(idp.URL(), http.StatusFound))
	t.Cleanup(srv.Close)
	s := newSet(t, srv.URL, &clock{t: time.Now()})
	if _, err := s.Key(context.Background(), "rsa-1", "RS256"); !errors.Is(err, jwks.ErrUnavailable) {
		t.Errorf("through a redirect: %v, want ErrUnavailable", err)
	}
	if idp.Fetches() != 0 {
		t.Errorf("the redirect was followed")
	}
}

// TestRunRefreshes: Run fetches at once and again after each max-age
// (within bounds), and stops with its context.
func TestRunRefreshes(t *testing.T) {
	idp := jwkstest.New(t)
	idp.SetCacheControl("public, max-age=0")
	fetched := idp.NotifyFetches(16)
	s, err := jwks.New(jwks.Options{URL: idp.URL(), Logger: quiet, MinInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for i := 0; i < 3; i++ {
		select {
		case <-fetched:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d periodic fetches", i)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if _, err := s.Key(context.Background(), "ec-1", "ES256"); err != nil {
		t.Errorf("after Run: %v", err)
	}
}

// TestRefreshInterval: Cache-Control max-age sets the periodic refresh,
// clamped to [MinInterval, MaxInterval]; without it, RefreshInterval.
func TestRefreshInterval(t *testing.T) {
	for _, tc := range []struct {
		cc   string
		want time.Duration
	}{
		{"", time.Hour},
		{"max-age=600", 10 * time.Minute},
		{"public, MAX-AGE=7200, must-revalidate", 2 * time.Hour},
		{"max-age=1", time.Minute},
		{"max-age=99999999", 24 * time.Hour},
		{"max-age=-5", time.Hour},
		{"max-age=abc", time.Hour},
		{"no-store", time.Hour},
	} {
		if got := jwks.IntervalFor(tc.cc, jwks.DefaultRefreshInterval, jwks.DefaultMinInterval, jwks.DefaultMaxInterval); got != tc.want {
			t.Errorf("Cache-Control %q: %v, want %v", tc.cc, got, tc.want)
		}
	}
}
