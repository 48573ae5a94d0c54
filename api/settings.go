package api

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ourway/auth/internal/config"
	"github.com/ourway/auth/internal/jwks"
	"github.com/ourway/auth/internal/secret"
)

// ServerConfig is the HTTP listener section of the settings (server:).
type ServerConfig struct {
	Host            string        `yaml:"host" env:"SERVER_HOST"`
	Port            int           `yaml:"port" env:"SERVER_PORT"`
	AllowCORS       bool          `yaml:"allow_cors" env:"ALLOW_CORS"`
	CORSOrigins     string        `yaml:"cors_origins" env:"CORS_ORIGINS"`
	ReadTimeout     time.Duration `yaml:"read_timeout"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"AUTH_SHUTDOWN_TIMEOUT"`
	// ReadHeaderTimeout bounds the reading of a request's headers (slow
	// clients are cut off).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout" env:"AUTH_READ_HEADER_TIMEOUT"`
	// TrustedProxies is a comma-separated list of CIDRs whose
	// X-Forwarded-For is believed; Proxies is it parsed (Validate fills it).
	TrustedProxies string       `yaml:"trusted_proxies" env:"AUTH_TRUSTED_PROXIES"`
	Proxies        []*net.IPNet `yaml:"-"`
}

// Addr is host:port, with an IPv6 host in brackets ("[::1]:4000"); the host
// may be given with or without them.
func (s ServerConfig) Addr() string {
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(s.Host, "["), "]"), strconv.Itoa(s.Port))
}

// Origins returns the CORS origins as a list.
func (s ServerConfig) Origins() []string {
	var out []string
	for _, o := range strings.Split(s.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// Validate checks the section and parses the trusted proxies.
func (s *ServerConfig) Validate() error {
	var errs []error
	if s.Port < 0 || s.Port > 65535 {
		errs = append(errs, config.Invalid("Port", strconv.Itoa(s.Port), "must be between 0 and 65535"))
	}
	if strings.TrimSpace(s.Host) == "" {
		errs = append(errs, config.Invalid("Host", "", "must not be empty"))
	}
	if s.AllowCORS && len(s.Origins()) == 0 {
		errs = append(errs, config.Invalid("CORSOrigins", "", "must list at least one origin (or * for any) when {AllowCORS} is true"))
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"ReadTimeout", s.ReadTimeout},
		{"WriteTimeout", s.WriteTimeout},
		{"IdleTimeout", s.IdleTimeout},
		{"ShutdownTimeout", s.ShutdownTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, config.Invalid(d.field, d.v.String(), "must be positive"))
		}
	}
	if s.ReadHeaderTimeout <= 0 || s.ReadHeaderTimeout > time.Minute {
		errs = append(errs, config.Invalid("ReadHeaderTimeout", s.ReadHeaderTimeout.String(), "must be between 1ms and 1m"))
	}
	nets, err := ParseTrustedProxies(s.TrustedProxies)
	if err != nil {
		errs = append(errs, config.Invalid("TrustedProxies", s.TrustedProxies, err.Error()))
	}
	s.Proxies = nets
	return errors.Join(errs...)
}

// ParseTrustedProxies parses a comma-separated list of CIDRs (a bare
// address counts as a single host). Blank entries are ignored; an empty
// list trusts no proxy.
func ParseTrustedProxies(s string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.Contains(part, "/") {
			ip, n, err := net.ParseCIDR(part)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or fd00::/8", part)
			}
			if !ip.Equal(n.IP) {
				return nil, fmt.Errorf("%q has host bits set (did you mean %s?)", part, n)
			}
			out = append(out, n)
			continue
		}
		ip := net.ParseIP(part)
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IP address or a CIDR", part)
		}
		bits := 128
		if v4 := ip.To4(); v4 != nil {
			ip, bits = v4, 32
		}
		out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
	}
	for _, n := range out {
		if ones, _ := n.Mask.Size(); ones == 0 {
			return nil, errors.New("trusting every address (/0) would let any client choose its IP")
		}
	}
	return out, nil
}

// OpsConfig is the operations listener and the /metrics token (in the
// ops: section of the settings).
type OpsConfig struct {
	// MetricsToken, when set, is the bearer token GET /metrics requires.
	MetricsToken config.Secret `yaml:"-" env:"AUTH_METRICS_TOKEN"`
	// Addr, when set, is the host:port of a listener of its own that
	// serves /metrics, /health and /ready; /metrics then leaves the API's.
	Addr string `yaml:"addr" env:"AUTH_OPS_ADDR"`
}

// Validate checks the section (that Addr differs from the API's address
// is checked where both are known).
func (o *OpsConfig) Validate() error {
	var errs []error
	if a := o.Addr; a != "" {
		_, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			errs = append(errs, config.Invalid("Addr", a, "must be host:port (\"127.0.0.1:9090\", \":9090\", \"[::1]:9090\")"))
		}
	}
	if t := o.MetricsToken.Reveal(); t != "" && len(t) < 16 {
		errs = append(errs, config.Invalid("MetricsToken", "", "must be at least 16 characters (e.g. `openssl rand -hex 16`)"))
	}
	return errors.Join(errs...)
}

// claimNameRE is the shape of a tenant claim's name.
var claimNameRE = regexp.MustCompile(`\A[A-Za-z0-9_.:/-]{1,128}\z`)

// JWTConfig is the token section of the settings (jwt:): the tokens this
// service issues, and an identity provider whose tokens it accepts.
type JWTConfig struct {
	Secret               config.Secret `yaml:"-" env:"JWT_SECRET_KEY"`
	Algorithm            string        `yaml:"algorithm" env:"JWT_ALGORITHM"`
	AccessTokenExpireMin int           `yaml:"access_token_expire_minutes" env:"JWT_ACCESS_TOKEN_EXPIRE_MINUTES"`
	Issuer               string        `yaml:"issuer" env:"AUTH_JWT_ISSUER"`
	Audience             string        `yaml:"audience" env:"AUTH_JWT_AUDIENCE"`
	// JWKSURL, when set, is the JWKS of an external identity provider
	// whose tokens are accepted too, with iss JWKSIssuer and aud
	// JWKSAudience; TenantClaim names the claim holding the tenant.
	JWKSURL      string `yaml:"jwks_url" env:"AUTH_JWKS_URL"`
	JWKSIssuer   string `yaml:"jwks_issuer" env:"AUTH_JWKS_ISSUER"`
	JWKSAudience string `yaml:"jwks_audience" env:"AUTH_JWKS_AUDIENCE"`
	TenantClaim  string `yaml:"tenant_claim" env:"AUTH_JWT_TENANT_CLAIM"`
}

// Validate checks the section. A secret, when set, must be strong (one
// is required outside development mode, which the caller decides).
func (j *JWTConfig) Validate() error {
	var errs []error
	switch j.Algorithm {
	case "HS256", "HS384", "HS512":
	default:
		errs = append(errs, config.Invalid("Algorithm", j.Algorithm, "must be HS256, HS384 or HS512"))
	}
	if j.AccessTokenExpireMin < 1 || j.AccessTokenExpireMin > 525600 {
		errs = append(errs, config.Invalid("AccessTokenExpireMin", strconv.Itoa(j.AccessTokenExpireMin), "must be between 1 and 525600"))
	}
	if strings.TrimSpace(j.Issuer) == "" {
		errs = append(errs, config.Invalid("Issuer", "", "must not be empty"))
	}
	if strings.TrimSpace(j.Audience) == "" {
		errs = append(errs, config.Invalid("Audience", "", "must not be empty"))
	}
	if s := j.Secret.Reveal(); s != "" && weakJWTSecret(s) {
		errs = append(errs, config.Invalid("Secret", "", "is weak: use at least 32 characters of random material (e.g. `openssl rand -hex 32`), not a placeholder"))
	}
	return errors.Join(append(errs, j.validateProvider())...)
}

// weakJWTSecret reports whether a JWT secret is short or a known
// placeholder (the original service's default among them).
func weakJWTSecret(s string) bool {
	return secret.Weak(s) || strings.Contains(strings.ToLower(s), "development")
}

// validateProvider checks the identity-provider settings: with a JWKS URL,
// the issuer and audience its tokens must carry are required; without
// one, they mean nothing and are refused rather than silently ignored.
func (j *JWTConfig) validateProvider() error {
	j.JWKSURL, j.JWKSIssuer, j.JWKSAudience = strings.TrimSpace(j.JWKSURL), strings.TrimSpace(j.JWKSIssuer), strings.TrimSpace(j.JWKSAudience)
	if !claimNameRE.MatchString(j.TenantClaim) {
		return config.Invalid("TenantClaim", j.TenantClaim, "must be a claim name of 1-128 letters, digits or _ . : / -")
	}
	if j.JWKSURL == "" {
		var errs []error
		if j.JWKSIssuer != "" {
			errs = append(errs, config.Invalid("JWKSIssuer", "", "is set but {JWKSURL} is not: set the provider's JWKS URL too, or unset it"))
		}
		if j.JWKSAudience != "" {
			errs = append(errs, config.Invalid("JWKSAudience", "", "is set but {JWKSURL} is not: set the provider's JWKS URL too, or unset it"))
		}
		return errors.Join(errs...)
	}
	if err := jwks.ValidateURL(j.JWKSURL); err != nil {
		// The value is not shown: a URL may carry credentials.
		return config.Invalid("JWKSURL", "", err.Error())
	}
	if j.JWKSIssuer == "" {
		return config.Invalid("JWKSIssuer", "", "is required with {JWKSURL}: the iss of the provider's tokens")
	}
	if j.JWKSAudience == "" {
		return config.Invalid("JWKSAudience", "", "is required with {JWKSURL}: the aud the provider puts in tokens for this service")
	}
	return nil
}

// Tokens returns the configuration of the tokens this service issues and
// accepts, signed with secret (the section's own, or one the caller made).
func (j JWTConfig) Tokens(secret []byte) *TokenConfig {
	return &TokenConfig{
		Secret: secret, Algorithm: j.Algorithm,
		TTL:    time.Duration(j.AccessTokenExpireMin) * time.Minute,
		Issuer: j.Issuer, Audience: j.Audience,
	}
}
