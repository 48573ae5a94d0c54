package config

import (
	"regexp"
	"strings"

	"github.com/ourway/auth/internal/jwks"
)

// claimNameRE is the shape of AUTH_JWT_TENANT_CLAIM.
var claimNameRE = regexp.MustCompile(`\A[A-Za-z0-9_.:/-]{1,128}\z`)

// jwksVars are the environment variables of the external identity
// provider (its tokens are verified with the keys it publishes).
func jwksVars(c *Config) []envVar {
	return []envVar{
		{"AUTH_JWKS_URL", func(v string) error { c.JWT.JWKSURL = v; return nil }},
		{"AUTH_JWKS_ISSUER", func(v string) error { c.JWT.JWKSIssuer = v; return nil }},
		{"AUTH_JWKS_AUDIENCE", func(v string) error { c.JWT.JWKSAudience = v; return nil }},
		{"AUTH_JWT_TENANT_CLAIM", func(v string) error { c.JWT.TenantClaim = v; return nil }},
	}
}

// finishJWKS validates the identity-provider settings: with a JWKS URL,
// the issuer and audience its tokens must carry are required; without
// one, they mean nothing and are refused rather than silently ignored.
func (c *Config) finishJWKS() error {
	j := &c.JWT
	j.JWKSURL, j.JWKSIssuer, j.JWKSAudience = strings.TrimSpace(j.JWKSURL), strings.TrimSpace(j.JWKSIssuer), strings.TrimSpace(j.JWKSAudience)
	if !claimNameRE.MatchString(j.TenantClaim) {
		return &Error{Setting: "AUTH_JWT_TENANT_CLAIM", Value: j.TenantClaim, Reason: "must be a claim name of 1-128 letters, digits or _ . : / -"}
	}
	if j.JWKSURL == "" {
		for name, v := range map[string]string{"AUTH_JWKS_ISSUER": j.JWKSIssuer, "AUTH_JWKS_AUDIENCE": j.JWKSAudience} {
			if v != "" {
				return &Error{Setting: name, Reason: "is set but AUTH_JWKS_URL is not: set the provider's JWKS URL too, or unset it"}
			}
		}
		return nil
	}
	if err := jwks.ValidateURL(j.JWKSURL); err != nil {
		// The value is not shown: a URL may carry credentials.
		return &Error{Setting: "AUTH_JWKS_URL", Reason: err.Error()}
	}
	if j.JWKSIssuer == "" {
		return &Error{Setting: "AUTH_JWKS_ISSUER", Reason: "is required with AUTH_JWKS_URL: the iss of the provider's tokens"}
	}
	if j.JWKSAudience == "" {
		return &Error{Setting: "AUTH_JWKS_AUDIENCE", Reason: "is required with AUTH_JWKS_URL: the aud the provider puts in tokens for this service"}
	}
	return nil
}
