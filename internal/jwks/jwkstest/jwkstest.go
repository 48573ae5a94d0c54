// Package jwkstest is an identity provider for tests: an HTTP server
// publishing a JWK set of generated keys (RSA, EC P-256, Ed25519) that
// counts its fetches, and signs tokens with those keys.
package jwkstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Key is a signing key of the provider.
type Key struct {
	ID      string
	Private crypto.Signer
	// Method is the algorithm the key signs with (RS256, ES256, EdDSA).
	Method jwt.SigningMethod
	// Alg, when set, is published as the JWK's alg.
	Alg string
}

// Provider is a running test identity provider.
type Provider struct {
	server *httptest.Server
	// RSA, EC and Ed are the keys published at start, with kids "rsa-1",
	// "ec-1" and "ed-1".
	RSA, EC, Ed Key

	mu           sync.Mutex
	keys         []Key
	cacheControl string
	fetches      atomic.Int64
	// fetched receives a value after each fetch is answered (when set).
	fetched chan struct{}
}

// NewKey generates a key of kind "rsa", "ec" or "ed".
func NewKey(tb testing.TB, kind, kid string) Key {
	tb.Helper()
	switch kind {
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			tb.Fatal(err)
		}
		return Key{ID: kid, Private: k, Method: jwt.SigningMethodRS256}
	case "ec":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		return Key{ID: kid, Private: k, Method: jwt.SigningMethodES256}
	case "ed":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		return Key{ID: kid, Private: k, Method: jwt.SigningMethodEdDSA}
	}
	tb.Fatalf("jwkstest: unknown key kind %q", kind)
	return Key{}
}

// New starts a provider publishing an RSA, an EC P-256 and an Ed25519 key;
// it stops when the test ends.
func New(tb testing.TB) *Provider {
	tb.Helper()
	p := &Provider{RSA: NewKey(tb, "rsa", "rsa-1"), EC: NewKey(tb, "ec", "ec-1"), Ed: NewKey(tb, "ed", "ed-1")}
	p.keys = []Key{p.RSA, p.EC, p.Ed}
	p.server = httptest.NewServer(http.HandlerFunc(p.serve))
	tb.Cleanup(p.server.Close)
	return p
}

func (p *Provider) serve(w http.ResponseWriter, r *http.Request) {
	p.fetches.Add(1)
	p.mu.Lock()
	set := make([]map[string]any, 0, len(p.keys))
	for _, k := range p.keys {
		set = append(set, JWK(k))
	}
	cc, fetched := p.cacheControl, p.fetched
	p.mu.Unlock()
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
	if fetched != nil {
		select {
		case fetched <- struct{}{}:
		default: // the test reads no more
		}
	}
}

// URL is the address of the key set.
func (p *Provider) URL() string { return p.server.URL + "/.well-known/jwks.json" }

// Fetches is the number of requests the key set has answered.
func (p *Provider) Fetches() int64 { return p.fetches.Load() }

// Publish replaces the published keys.
func (p *Provider) Publish(keys ...Key) {
	p.mu.Lock()
	p.keys = keys
	p.mu.Unlock()
}

// SetCacheControl sets the Cache-Control header of the answers.
func (p *Provider) SetCacheControl(v string) {
	p.mu.Lock()
	p.cacheControl = v
	p.mu.Unlock()
}

// NotifyFetches makes every answered fetch send on the returned channel
// (dropped when its buffer is full).
func (p *Provider) NotifyFetches(buffer int) <-chan struct{} {
	ch := make(chan struct{}, buffer)
	p.mu.Lock()
	p.fetched = ch
	p.mu.Unlock()
	return ch
}

// Sign signs claims with k, kid k.ID, in k's algorithm.
func Sign(tb testing.TB, k Key, claims jwt.Claims) string {
	tb.Helper()
	t := jwt.NewWithClaims(k.Method, claims)
	t.Header["kid"] = k.ID
	s, err := t.SignedString(k.Private)
	if err != nil {
		tb.Fatalf("sign with %s: %v", k.ID, err)
	}
	return s
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// JWK is the public JWK of k.
func JWK(k Key) map[string]any {
	m := PublicJWK(k.ID, k.Private.Public())
	if k.Alg != "" {
		m["alg"] = k.Alg
	}
	return m
}

// PublicJWK is the JWK of a public key with this kid.
func PublicJWK(kid string, pub crypto.PublicKey) map[string]any {
	m := map[string]any{"kid": kid, "use": "sig"}
	switch pk := pub.(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(pk.N.Bytes()), b64(big.NewInt(int64(pk.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, _ := pk.Bytes() // 0x04 || x || y
		size := (len(raw) - 1) / 2
		m["kty"], m["crv"], m["x"], m["y"] = "EC", pk.Curve.Params().Name, b64(raw[1:1+size]), b64(raw[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(pk)
	}
	return m
}
