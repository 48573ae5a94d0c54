// Package jwks fetches, caches and serves the public keys of an identity
// provider, published as a JSON Web Key Set (RFC 7517) at a fixed URL.
//
// Keys are selected by kid and must fit the token's algorithm: an RSA key
// only for RS*/PS*, an EC key of the matching curve only for ES*, an
// Ed25519 key only for EdDSA, and never a symmetric ("oct") key. The set is
// refreshed on a kid it does not know (at most once per MinRefresh, and
// concurrent misses share one fetch) and periodically by Run (the
// provider's Cache-Control max-age, within bounds). A failed fetch keeps the
// last good keys.
package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors of key selection.
var (
	// ErrUnknownKey: no key of the set has this kid (after the refresh the
	// rate bound allowed, if any).
	ErrUnknownKey = errors.New("jwks: no key with this kid")
	// ErrKeyMismatch: the key with this kid does not fit the algorithm.
	ErrKeyMismatch = errors.New("jwks: key does not fit the algorithm")
	// ErrUnavailable: the set has never been fetched successfully.
	ErrUnavailable = errors.New("jwks: key set unavailable")
)

// Defaults of Options.
const (
	DefaultTimeout         = 5 * time.Second
	DefaultMaxBytes        = 256 << 10
	DefaultMinRefresh      = 10 * time.Second
	DefaultRefreshInterval = time.Hour
	DefaultMinInterval     = time.Minute
	DefaultMaxInterval     = 24 * time.Hour
	// maxKeys bounds the number of keys kept from one set.
	maxKeys = 100
)

// Options configure a Set; zero values take the defaults.
type Options struct {
	// URL is the JWKS address: https, or http to a loopback host only.
	URL string
	// Client makes the requests (nil: a client with Timeout and no
	// redirects).
	Client *http.Client
	// Timeout bounds one fetch (default 5s).
	Timeout time.Duration
	// MaxBytes bounds the size of the response body (default 256 KiB).
	MaxBytes int64
	// MinRefresh is the least time between two fetches caused by unknown
	// kids (default 10s).
	MinRefresh time.Duration
	// RefreshInterval is how often Run refreshes the set when the provider
	// sends no Cache-Control max-age (default 1h); a max-age is used within
	// [MinInterval, MaxInterval] (defaults 1m and 24h).
	RefreshInterval          time.Duration
	MinInterval, MaxInterval time.Duration
	// Logger receives fetch failures and skipped keys (nil: slog.Default).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Key is one public key of the set.
type Key struct {
	ID     string
	Kty    string // RSA, EC or OKP
	Crv    string // P-256, P-384, P-521 or Ed25519 (empty for RSA)
	Alg    string // the key's declared algorithm, or empty
	Public crypto.PublicKey
}

// Set is a provider's key set, fetched on demand and cached.
type Set struct {
	opts Options
	url  string
	log  *slog.Logger

	mu          sync.Mutex
	keys        map[string]Key
	loaded      bool
	lastAttempt time.Time // of the last fetch, successful or not
	maxAge      time.Duration
	inflight    *fetchCall
	fetches     int64
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// ValidateURL checks a JWKS URL: absolute https, or http to a loopback
// host (development), without user information or fragment.
func ValidateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL")
	}
	if u.User != nil || u.Fragment != "" || u.Host == "" {
		return errors.New("must be https://host/path, without user information or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errors.New("must use https (http only to a loopback address, for development)")
	}
	return errors.New("must be an https URL")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// New returns a Set for opts.URL; nothing is fetched until a key is asked
// for or Run starts.
func New(opts Options) (*Set, error) {
	if err := ValidateURL(opts.URL); err != nil {
		return nil, fmt.Errorf("jwks url: %w", err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MinRefresh <= 0 {
		opts.MinRefresh = DefaultMinRefresh
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.MinInterval <= 0 {
		opts.MinInterval = DefaultMinInterval
	}
	if opts.MaxInterval <= 0 {
		opts.MaxInterval = DefaultMaxInterval
	}
	if opts.Client == nil {
		opts.Client = &http.Client{
			Timeout: opts.Timeout,
			// The key set comes from the configured address only.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Set{opts: opts, url: opts.URL, log: opts.Logger, keys: map[string]Key{}}, nil
}

// Fetches is the number of fetches made so far (successful or not).
func (s *Set) Fetches() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// Key returns the public key with this kid, if it fits alg (a JWS
// algorithm name). An unknown kid refreshes the set first, unless a fetch
// happened less than MinRefresh ago.
func (s *Set) Key(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	if kid == "" {
		return nil, ErrUnknownKey
	}
	s.mu.Lock()
	k, ok := s.keys[kid]
	s.mu.Unlock()
	if !ok {
		err := s.refresh(ctx, true)
		s.mu.Lock()
		k, ok = s.keys[kid]
		loaded := s.loaded
		s.mu.Unlock()
		if !ok {
			if !loaded && err != nil {
				return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return nil, ErrUnknownKey
		}
	}
	if !Fits(k, alg) {
		return nil, ErrKeyMismatch
	}
	return k.Public, nil
}

// Fits reports whether key k may verify a signature of algorithm alg.
func Fits(k Key, alg string) bool {
	if k.Alg != "" && k.Alg != alg {
		return false
	}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		_, ok := k.Public.(*rsa.PublicKey)
		return ok && k.Kty == "RSA"
	case "ES256", "ES384", "ES512":
		want := map[string]string{"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg]
		_, ok := k.Public.(*ecdsa.PublicKey)
		return ok && k.Kty == "EC" && k.Crv == want
	case "EdDSA":
		_, ok := k.Public.(ed25519.PublicKey)
		return ok && k.Kty == "OKP" && k.Crv == "Ed25519"
	}
	return false
}

// Run refreshes the set until ctx ends: at once, then every max-age (as
// the provider's Cache-Control says, within bounds) or RefreshInterval. A
// failed fetch is retried after MinInterval; the last good keys stay.
func (s *Set) Run(ctx context.Context) error {
	for {
		wait := s.opts.MinInterval
		if err := s.refresh(ctx, false); err == nil {
			s.mu.Lock()
			wait = s.maxAge
			s.mu.Unlock()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// refresh fetches the set, or waits for the fetch already under way. An
// on-demand refresh (an unknown kid) is skipped when the last fetch was
// less than MinRefresh ago.
func (s *Set) refresh(ctx context.Context, onDemand bool) error {
	s.mu.Lock()
	if c := s.inflight; c != nil {
		s.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	now := s.opts.Now()
	if onDemand && !s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < s.opts.MinRefresh {
		s.mu.Unlock()
		return nil
	}
	c := &fetchCall{done: make(chan struct{})}
	s.inflight = c
	s.lastAttempt = now
	s.fetches++
	s.mu.Unlock()

	// The fetch is shared: it must not end with the request that started it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	keys, maxAge, err := s.fetch(fctx)
	cancel()

	s.mu.Lock()
	if err == nil {
		s.keys, s.loaded, s.maxAge = keys, true, maxAge
	} else {
		s.log.WarnContext(ctx, "jwks fetch failed; keeping the last good keys", "url", s.url, "err", err)
	}
	c.err = err
	s.inflight = nil
	close(c.done)
	s.mu.Unlock()
	return err
}

// fetch downloads and parses the set.
func (s *Set) fetch(ctx context.Context) (map[string]Key, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, s.opts.MaxBytes))
		return nil, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.opts.MaxBytes+1))
	if err != nil {
		return nil, 0, err
	}
	if int64(len(body)) > s.opts.MaxBytes {
		return nil, 0, fmt.Errorf("response larger than %d bytes", s.opts.MaxBytes)
	}
	keys, err := Parse(body, s.log)
	if err != nil {
		return nil, 0, err
	}
	return keys, s.interval(resp.Header.Get("Cache-Control")), nil
}

// interval is the refresh interval a Cache-Control header asks for, within
// bounds.
func (s *Set) interval(cc string) time.Duration {
	d := s.opts.RefreshInterval
	for _, dir := range strings.Split(cc, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(dir), "=")
		if !ok || !strings.EqualFold(name, "max-age") {
			continue
		}
		if n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64); err == nil && n >= 0 && n < 1<<31 {
			d = time.Duration(n) * time.Second
		}
	}
	return min(max(d, s.opts.MinInterval), s.opts.MaxInterval)
}

// rawKey is a JWK as published.
type rawKey struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
}

// Parse reads a JWK set. Keys that cannot serve here are skipped (and
// logged): symmetric keys, encryption keys, keys without kid, private keys,
// unknown types and curves, RSA keys under 2048 bits, and every key of a kid
// that appears twice. A set left without any key is an error.
func Parse(body []byte, log *slog.Logger) (map[string]Key, error) {
	if log == nil {
		log = slog.Default()
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("not a JWK set: %w", err)
	}
	keys := map[string]Key{}
	dup := map[string]bool{}
	for i, raw := range doc.Keys {
		if i >= maxKeys {
			log.Warn("jwks: keys past the limit ignored", "limit", maxKeys)
			break
		}
		var r rawKey
		if err := json.Unmarshal(raw, &r); err != nil {
			log.Warn("jwks: key skipped", "index", i, "reason", "not a JWK object")
			continue
		}
		k, err := parseKey(r)
		if err != nil {
			log.Warn("jwks: key skipped", "index", i, "kid", r.Kid, "reason", err.Error())
			continue
		}
		if _, seen := keys[k.ID]; seen || dup[k.ID] {
			log.Warn("jwks: kid appears more than once; none of its keys is used", "kid", k.ID)
			delete(keys, k.ID)
			dup[k.ID] = true
			continue
		}
		keys[k.ID] = k
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signing key in the set")
	}
	return keys, nil
}

func parseKey(r rawKey) (Key, error) {
	switch {
	case r.Kid == "":
		return Key{}, errors.New("no kid")
	case r.Use != "" && r.Use != "sig":
		return Key{}, errors.New("not a signing key (use " + r.Use + ")")
	case r.D != "":
		return Key{}, errors.New("a private key: publish public keys only")
	}
	k := Key{ID: r.Kid, Kty: r.Kty, Crv: r.Crv, Alg: r.Alg}
	switch r.Kty {
	case "RSA":
		n, err := b64(r.N)
		if err != nil || len(n) == 0 {
			return Key{}, errors.New("bad n")
		}
		e, err := b64(r.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return Key{}, errors.New("bad e")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 || pub.N.BitLen() > 8192 {
			return Key{}, errors.New("RSA modulus must be 2048 to 8192 bits")
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return Key{}, errors.New("bad RSA exponent")
		}
		k.Crv, k.Public = "", pub
	case "EC":
		var curve elliptic.Curve
		switch r.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return Key{}, errors.New("unsupported curve " + r.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, errX := b64(r.X)
		y, errY := b64(r.Y)
		if errX != nil || errY != nil || len(x) != size || len(y) != size {
			return Key{}, errors.New("bad x or y")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return Key{}, errors.New("point not on the curve")
		}
		k.Public = pub
	case "OKP":
		if r.Crv != "Ed25519" {
			return Key{}, errors.New("unsupported curve " + r.Crv)
		}
		x, err := b64(r.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return Key{}, errors.New("bad x")
		}
		k.Public = ed25519.PublicKey(x)
	case "oct":
		return Key{}, errors.New("a symmetric key: never accepted from a key set")
	default:
		return Key{}, errors.New("unsupported kty " + r.Kty)
	}
	return k, nil
}

// b64 decodes base64url without padding, strictly.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(s)
}
