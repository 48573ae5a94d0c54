package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ourway/auth/policy"
)

const (
	unitSecret   = "unit-jwt-0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"
	unitIssuer   = "auth-server"
	unitAudience = "auth-api"
	unitTTL      = 15 * time.Minute
)

func unitTokens() *tokens {
	return newTokens(TokenConfig{Secret: []byte(unitSecret), Algorithm: "HS256", TTL: unitTTL,
		Issuer: unitIssuer, Audience: unitAudience})
}

func unitHash(t testing.TB, key string) policy.KeyHash {
	t.Helper()
	h, err := policy.ParseClientKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

const (
	keyA = "0f3c6a2e-1b7d-4c59-9e0a-6d2f8b1c3a47"
	keyB = "7a1e5c3b-9d2f-4e68-a0b4-1c7d3e9f5a26"
)

// goodClaims are claims this service would issue now.
func goodClaims(t testing.TB, now time.Time) jwt.MapClaims {
	h := unitHash(t, keyA)
	return jwt.MapClaims{
		"iss": unitIssuer, "aud": []string{unitAudience}, "sub": "tenant",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(unitTTL).Unix(),
		"jti": "5f0c9a1e3b7d4c2a8e6f1d3b5a7c9e0f", "tenant": string(h), "ckh": string(h), "scope": scopeFull,
	}
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// rawToken builds a token from a header and claims as JSON, with the
// signature computed by signer over "header.payload" (nil: no signature).
func rawToken(t testing.TB, header, claims any, signer func(string) string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	sig := ""
	if signer != nil {
		sig = signer(in)
	}
	return in + "." + sig
}

func hmacSign(t testing.TB, m jwt.SigningMethod, key []byte) func(string) string {
	return func(in string) string {
		b, err := m.Sign(in, key)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
}

// padded signs claims with an extra "pad" claim long enough that the token
// is exactly n bytes long; ok is false if no padding gives that length.
func padded(t testing.TB, c jwt.MapClaims, n int) (string, bool) {
	t.Helper()
	for pad := 0; pad < n; pad++ {
		c["pad"] = strings.Repeat("x", pad)
		s := sign(t, jwt.SigningMethodHS256, []byte(unitSecret), c)
		if len(s) == n {
			return s, true
		}
		if len(s) > n {
			return "", false
		}
	}
	return "", false
}

func TestTokenParse(t *testing.T) {
	tk := unitTokens()
	now := time.Now()
	secret := []byte(unitSecret)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	with := func(edit func(c jwt.MapClaims)) jwt.MapClaims {
		c := goodClaims(t, now)
		edit(c)
		return c
	}
	hs256 := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, c) }
	good := hs256(goodClaims(t, now))
	parts := strings.Split(good, ".")

	// flip changes one character of s at i to another base64url character.
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	reencoded := func(edit func(c jwt.MapClaims)) string {
		// Claims changed after signing, with the original signature.
		c := with(edit)
		b, _ := json.Marshal(c)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}
	atLimit, ok := padded(t, goodClaims(t, now), maxTokenLen)
	if !ok {
		t.Fatalf("could not build a token of exactly %d bytes", maxTokenLen)
	}
	overLimit, ok := padded(t, goodClaims(t, now), maxTokenLen+1)
	if !ok {
		overLimit, _ = padded(t, goodClaims(t, now), maxTokenLen+2)
	}

	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		// Controls: what this service issues, and the tolerances.
		{"valid", good, true},
		{"valid with surrounding space", " " + good + " ", true},
		{"aud as a single string", hs256(with(func(c jwt.MapClaims) { c["aud"] = unitAudience })), true},
		{"no nbf", hs256(with(func(c jwt.MapClaims) { delete(c, "nbf") })), true},
		{"expired within the leeway", hs256(with(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-10*time.Second).Unix()
		})), true},
		{"nbf in the future within the leeway", hs256(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Second).Unix() })), true},
		{"iat in the future within the leeway", hs256(with(func(c jwt.MapClaims) {
			c["iat"] = now.Add(10 * time.Second).Unix()
			c["exp"] = now.Add(10*time.Second + unitTTL).Unix()
		})), true},
		{"check scope", hs256(with(func(c jwt.MapClaims) { c["scope"] = scopeCheck })), true},
		{"exactly the maximum length", atLimit, true},

		// Algorithms.
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims(t, now)), false},
		{"alg none with a signature", rawToken(t, map[string]string{"alg": "none", "typ": "JWT"}, goodClaims(t, now), hmacSign(t, jwt.SigningMethodHS256, secret)), false},
		{"alg None", rawToken(t, map[string]string{"alg": "None", "typ": "JWT"}, goodClaims(t, now), nil), false},
		{"alg missing", rawToken(t, map[string]string{"typ": "JWT"}, goodClaims(t, now), hmacSign(t, jwt.SigningMethodHS256, secret)), false},
		{"HS256 with the RSA public key PEM as secret", sign(t, jwt.SigningMethodHS256, rsaPEM, goodClaims(t, now)), false},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, goodClaims(t, now)), false},
		{"PS256", sign(t, jwt.SigningMethodPS256, rsaKey, goodClaims(t, now)), false},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, goodClaims(t, now)), false},
		{"HS512 with the right secret", sign(t, jwt.SigningMethodHS512, secret, goodClaims(t, now)), false},
		{"HS384 with the right secret", sign(t, jwt.SigningMethodHS384, secret, goodClaims(t, now)), false},
		{"header says HS256, signed HS512", rawToken(t, map[string]string{"alg": "HS256", "typ": "JWT"}, goodClaims(t, now), hmacSign(t, jwt.SigningMethodHS512, secret)), false},

		// Keys and signatures.
		{"another secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef0123456789"), goodClaims(t, now)), false},
		{"the secret with a byte more", sign(t, jwt.SigningMethodHS256, append([]byte(unitSecret), 'x'), goodClaims(t, now)), false},
		{"empty secret", sign(t, jwt.SigningMethodHS256, []byte{}, goodClaims(t, now)), false},
		{"signature tampered", flip(good, len(parts[0])+len(parts[1])+5), false},
		{"signature removed", parts[0] + "." + parts[1] + ".", false},
		{"signature truncated", good[:len(good)-4], false},
		{"payload tampered (scope check to full)", func() string {
			c := sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["scope"] = scopeCheck }))
			p := strings.Split(c, ".")
			b, _ := json.Marshal(goodClaims(t, now))
			return p[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + p[2]
		}(), false},
		{"payload tampered (tenant)", reencoded(func(c jwt.MapClaims) { c["tenant"] = string(unitHash(t, keyB)) }), false},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(hs256(with(func(c jwt.MapClaims) { c["jti"] = "other" })), ".")[2], false},
		{"signature with padding", good + "=", false},
		{"line break in the signature", good[:len(good)-10] + "\n" + good[len(good)-10:], false},
		{"carriage return in the signature", good[:len(good)-10] + "\r" + good[len(good)-10:], false},
		{"space in the signature", good[:len(good)-10] + " " + good[len(good)-10:], false},
		{"non-canonical last signature character", func() string {
			// 32 bytes in base64url leave 2 spare bits in the last
			// character: a lenient decoder reads the same signature.
			b := []byte(good)
			i := len(b) - 1
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			v := strings.IndexByte(alphabet, b[i])
			b[i] = alphabet[v^1]
			return string(b)
		}(), false},

		// Time.
		{"expired beyond the leeway", hs256(with(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-time.Minute).Unix()
		})), false},
		{"nbf in the future beyond the leeway", hs256(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), false},
		{"iat in the future beyond the leeway", hs256(with(func(c jwt.MapClaims) {
			c["iat"] = now.Add(2 * time.Minute).Unix()
			c["exp"] = now.Add(2*time.Minute + unitTTL).Unix()
		})), false},
		{"exp missing", hs256(with(func(c jwt.MapClaims) { delete(c, "exp") })), false},
		{"exp null", hs256(with(func(c jwt.MapClaims) { c["exp"] = nil })), false},
		{"exp a string", hs256(with(func(c jwt.MapClaims) { c["exp"] = "9999999999" })), false},
		{"iat missing", hs256(with(func(c jwt.MapClaims) { delete(c, "iat") })), false},
		{"lifetime longer than issued", hs256(with(func(c jwt.MapClaims) { c["exp"] = now.Add(unitTTL + time.Minute).Unix() })), false},
		{"lifetime of a year", hs256(with(func(c jwt.MapClaims) { c["exp"] = now.Add(365 * 24 * time.Hour).Unix() })), false},

		// Issuer and audience.
		{"wrong iss", hs256(with(func(c jwt.MapClaims) { c["iss"] = "someone-else" })), false},
		{"iss missing", hs256(with(func(c jwt.MapClaims) { delete(c, "iss") })), false},
		{"iss differs in case", hs256(with(func(c jwt.MapClaims) { c["iss"] = "Auth-Server" })), false},
		{"wrong aud", hs256(with(func(c jwt.MapClaims) { c["aud"] = []string{"another-api"} })), false},
		{"aud missing", hs256(with(func(c jwt.MapClaims) { delete(c, "aud") })), false},
		{"aud empty", hs256(with(func(c jwt.MapClaims) { c["aud"] = []string{} })), false},
		{"aud a number", hs256(with(func(c jwt.MapClaims) { c["aud"] = 7 })), false},

		// Our own claims.
		{"tenant missing", hs256(with(func(c jwt.MapClaims) { delete(c, "tenant") })), false},
		{"ckh missing", hs256(with(func(c jwt.MapClaims) { delete(c, "ckh") })), false},
		{"scope missing", hs256(with(func(c jwt.MapClaims) { delete(c, "scope") })), false},
		{"jti missing", hs256(with(func(c jwt.MapClaims) { delete(c, "jti") })), false},
		{"scope admin", hs256(with(func(c jwt.MapClaims) { c["scope"] = "admin" })), false},
		{"scope FULL", hs256(with(func(c jwt.MapClaims) { c["scope"] = "FULL" })), false},
		{"scope with a space", hs256(with(func(c jwt.MapClaims) { c["scope"] = "check " })), false},
		{"scope list", hs256(with(func(c jwt.MapClaims) { c["scope"] = []string{"check", "full"} })), false},
		{"ckh not hex", hs256(with(func(c jwt.MapClaims) { c["ckh"] = strings.Repeat("z", 64) })), false},
		{"ckh short", hs256(with(func(c jwt.MapClaims) { c["ckh"] = string(unitHash(t, keyA))[:62] })), false},
		{"ckh upper case", hs256(with(func(c jwt.MapClaims) { c["ckh"] = strings.ToUpper(string(unitHash(t, keyA))) })), false},
		{"ckh is the client key itself", hs256(with(func(c jwt.MapClaims) { c["ckh"] = keyA })), false},
		{"tenant short", hs256(with(func(c jwt.MapClaims) { c["tenant"] = "abc" })), false},
		{"tenant not hex", hs256(with(func(c jwt.MapClaims) { c["tenant"] = strings.Repeat("g", 64) })), false},

		// Shape and size.
		{"one over the maximum length", overLimit, false},
		{"oversized", hs256(with(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", 8000) })), false},
		{"empty", "", false},
		{"two parts", parts[0] + "." + parts[1], false},
		{"four parts", good + ".x", false},
		{"payload not JSON", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("not json")) + "." + parts[2], false},
		{"payload a JSON array", rawToken(t, map[string]string{"alg": "HS256", "typ": "JWT"}, []any{1, 2}, hmacSign(t, jwt.SigningMethodHS256, secret)), false},
		{"client key", keyA, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tk.parse(tc.token)
			if got := err == nil; got != tc.ok {
				t.Fatalf("parse: err = %v, want ok = %v", err, tc.ok)
			}
			if err != nil {
				if err != errBadToken || c != nil {
					t.Errorf("parse failed with (%v, %v), want (nil, errBadToken): no detail for the client", c, err)
				}
				return
			}
			if c.Tenant == "" || c.Key == "" || c.ID == "" {
				t.Errorf("accepted claims are incomplete: %+v", c)
			}
		})
	}
}

func TestTokenIssueRoundTrip(t *testing.T) {
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		t.Run(alg, func(t *testing.T) {
			tk := newTokens(TokenConfig{Secret: []byte(unitSecret), Algorithm: alg, TTL: 7 * time.Minute,
				Issuer: "iss-x", Audience: "aud-y"})
			handle, key := unitHash(t, keyA), unitHash(t, keyB)
			now := time.Now()
			seen := map[string]bool{}
			for _, scope := range []string{scopeFull, scopeCheck, scopeFull} {
				s, err := tk.issue(handle, key, scope, now)
				if err != nil {
					t.Fatal(err)
				}
				c, err := tk.parse(s)
				if err != nil {
					t.Fatalf("parse of an issued token: %v", err)
				}
				if c.Tenant != string(handle) || c.Key != string(key) || c.Scope != scope {
					t.Errorf("claims tenant=%q ckh=%q scope=%q, want %q %q %q", c.Tenant, c.Key, c.Scope, handle, key, scope)
				}
				if c.Issuer != "iss-x" || len(c.Audience) != 1 || c.Audience[0] != "aud-y" {
					t.Errorf("iss=%q aud=%v", c.Issuer, c.Audience)
				}
				if got := c.ExpiresAt.Sub(c.IssuedAt.Time); got != 7*time.Minute {
					t.Errorf("exp-iat = %v, want 7m", got)
				}
				if len(c.ID) != 32 || seen[c.ID] {
					t.Errorf("jti %q: want 32 hex characters, unique", c.ID)
				}
				seen[c.ID] = true
				tok, _, err := jwt.NewParser().ParseUnverified(s, jwt.MapClaims{})
				if err != nil || tok.Header["alg"] != alg || tok.Header["typ"] != "JWT" {
					t.Errorf("header = %v, %v; want alg %s", tok.Header, err, alg)
				}
				// Another algorithm of the same family is refused.
				other := newTokens(TokenConfig{Secret: []byte(unitSecret), Algorithm: map[string]string{"HS256": "HS512", "HS384": "HS256", "HS512": "HS384"}[alg],
					TTL: 7 * time.Minute, Issuer: "iss-x", Audience: "aud-y"})
				if _, err := other.parse(s); err == nil {
					t.Errorf("a %s token was accepted by a %s service", alg, other.cfg.Algorithm)
				}
			}
		})
	}
}

// FuzzTokenParse: parse never panics, and accepts no token but the one
// signed with the secret: any change to a valid token's bytes is refused.
func FuzzTokenParse(f *testing.F) {
	// A fixed clock and fixed claims: every fuzz worker process builds the
	// same valid token.
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tk := newTokens(TokenConfig{Secret: []byte(unitSecret), Algorithm: "HS256", TTL: unitTTL,
		Issuer: unitIssuer, Audience: unitAudience, now: func() time.Time { return clock }})
	c := goodClaims(f, clock)
	c["scope"] = scopeCheck
	valid := sign(f, jwt.SigningMethodHS256, []byte(unitSecret), c)
	if _, err := tk.parse(valid); err != nil {
		f.Fatalf("the valid token is refused: %v", err)
	}
	f.Add("", uint16(0), byte(0), false)
	f.Add(valid, uint16(len(valid)-1), byte('A'), false)
	f.Add(valid, uint16(len(valid)-1), byte('B'), true)
	f.Add("a.b.c", uint16(10), byte('.'), false)
	f.Add(strings.Split(valid, ".")[0]+".e30.", uint16(5), byte('='), true)
	f.Fuzz(func(t *testing.T, s string, pos uint16, b byte, insert bool) {
		if c, err := tk.parse(s); err == nil && strings.TrimSpace(s) != valid {
			t.Fatalf("accepted a token that is not the valid one: %q (claims %+v)", s, c)
		}
		// The valid token with one byte replaced or inserted.
		i := int(pos) % (len(valid) + 1)
		var m string
		switch {
		case insert:
			m = valid[:i] + string([]byte{b}) + valid[i:]
		case i == len(valid):
			m = valid + string([]byte{b})
		default:
			m = valid[:i] + string([]byte{b}) + valid[i+1:]
		}
		if _, err := tk.parse(m); err == nil && strings.TrimSpace(m) != valid {
			t.Fatalf("accepted the valid token changed at %d to %q: %q", i, b, m)
		}
	})
}
