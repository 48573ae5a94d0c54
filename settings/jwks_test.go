package settings_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ourway/auth/internal/config"
)

func TestJWKSSettings(t *testing.T) {
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.JWT.JWKSURL != "" || c.JWT.JWKSIssuer != "" || c.JWT.JWKSAudience != "" || c.JWT.TenantClaim != "tenant" {
		t.Errorf("defaults: %+v; want no provider and tenant claim \"tenant\"", c.JWT)
	}
	c, err = load(t, "AUTH_JWKS_URL", "https://idp.example.com/.well-known/jwks.json", "AUTH_JWKS_ISSUER", "https://idp.example.com/",
		"AUTH_JWKS_AUDIENCE", "auth-api", "AUTH_JWT_TENANT_CLAIM", "https://example.com/tenant")
	if err != nil {
		t.Fatal(err)
	}
	if c.JWT.JWKSURL != "https://idp.example.com/.well-known/jwks.json" || c.JWT.JWKSIssuer != "https://idp.example.com/" ||
		c.JWT.JWKSAudience != "auth-api" || c.JWT.TenantClaim != "https://example.com/tenant" {
		t.Errorf("settings not applied: %+v", c.JWT)
	}
	if _, err := load(t, "AUTH_JWKS_URL", "http://127.0.0.1:8080/jwks", "AUTH_JWKS_ISSUER", "dev", "AUTH_JWKS_AUDIENCE", "auth-api"); err != nil {
		t.Errorf("http to loopback: %v", err)
	}
}

func TestJWKSBadValues(t *testing.T) {
	const url = "https://idp.example.com/jwks"
	for _, tc := range []struct {
		name    string
		env     []string
		setting string
		reason  string
	}{
		{"issuer missing", []string{"AUTH_JWKS_URL", url, "AUTH_JWKS_AUDIENCE", "a"}, "AUTH_JWKS_ISSUER", "required with AUTH_JWKS_URL"},
		{"audience missing", []string{"AUTH_JWKS_URL", url, "AUTH_JWKS_ISSUER", "i"}, "AUTH_JWKS_AUDIENCE", "required with AUTH_JWKS_URL"},
		{"plain http to a remote host", []string{"AUTH_JWKS_URL", "http://idp.example.com/jwks", "AUTH_JWKS_ISSUER", "i", "AUTH_JWKS_AUDIENCE", "a"}, "AUTH_JWKS_URL", "https"},
		{"credentials in the URL", []string{"AUTH_JWKS_URL", "https://u:secretpass@idp.example.com/jwks", "AUTH_JWKS_ISSUER", "i", "AUTH_JWKS_AUDIENCE", "a"}, "AUTH_JWKS_URL", "user information"},
		{"not a URL", []string{"AUTH_JWKS_URL", "idp.example.com", "AUTH_JWKS_ISSUER", "i", "AUTH_JWKS_AUDIENCE", "a"}, "AUTH_JWKS_URL", "https"},
		{"issuer without URL", []string{"AUTH_JWKS_ISSUER", "i"}, "AUTH_JWKS_ISSUER", "AUTH_JWKS_URL is not"},
		{"audience without URL", []string{"AUTH_JWKS_AUDIENCE", "a"}, "AUTH_JWKS_AUDIENCE", "AUTH_JWKS_URL is not"},
		{"tenant claim with a space", []string{"AUTH_JWT_TENANT_CLAIM", "my tenant"}, "AUTH_JWT_TENANT_CLAIM", "claim name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.env...)
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Setting != tc.setting || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error = %v, want one naming %s (%s)", err, tc.setting, tc.reason)
			}
			if strings.Contains(err.Error(), "secretpass") {
				t.Errorf("error shows the URL's password: %v", err)
			}
		})
	}
}
