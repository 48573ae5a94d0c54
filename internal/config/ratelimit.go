package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ourway/auth/internal/ratelimit"
)

// finishRateLimit validates the rate-limit section and parses its limits.
// Reads, Writes and Unauthenticated are optional: empty means the route
// class is counted against the default limits.
func (c *Config) finishRateLimit() error {
	rl := &c.RateLimit
	limits, err := ratelimit.ParseLimits(rl.Default)
	if err != nil {
		return &Error{Setting: "RATE_LIMIT_DEFAULT", Value: rl.Default, Reason: err.Error()}
	}
	rl.Limits = limits
	for _, o := range []struct {
		setting string
		text    string
		dst     *[]ratelimit.Limit
	}{
		{"AUTH_RATE_LIMIT_READS", rl.Reads, &rl.ReadLimits},
		{"AUTH_RATE_LIMIT_WRITES", rl.Writes, &rl.WriteLimits},
		{"AUTH_RATE_LIMIT_UNAUTHENTICATED", rl.Unauthenticated, &rl.UnauthenticatedLimits},
	} {
		*o.dst = nil
		if strings.TrimSpace(o.text) == "" {
			continue
		}
		l, err := ratelimit.ParseLimits(o.text)
		if err != nil {
			return &Error{Setting: o.setting, Value: o.text, Reason: err.Error()}
		}
		*o.dst = l
	}
	if rl.Replicas < 1 || rl.Replicas > 1000 {
		return &Error{Setting: "AUTH_RATE_LIMIT_REPLICAS", Value: strconv.Itoa(rl.Replicas), Reason: "must be between 1 and 1000"}
	}
	if err := validateStorageURL(rl.StorageURL); err != nil {
		// A Redis URL may carry a password: echo it only when it cannot.
		shown := rl.StorageURL
		if strings.ContainsAny(shown, "@%") {
			shown = ""
		}
		return &Error{Setting: "RATELIMIT_STORAGE_URL", Value: shown, Reason: err.Error()}
	}
	return nil
}

// ClassLimits returns the limits of each route class that has its own, in
// the form ratelimit.Options wants.
func (rl RateLimit) ClassLimits() map[string][]ratelimit.Limit {
	m := map[string][]ratelimit.Limit{ratelimit.Default: rl.Limits}
	if len(rl.ReadLimits) > 0 {
		m[ratelimit.Reads] = rl.ReadLimits
	}
	if len(rl.WriteLimits) > 0 {
		m[ratelimit.Writes] = rl.WriteLimits
	}
	if len(rl.UnauthenticatedLimits) > 0 {
		m[ratelimit.Unauthenticated] = rl.UnauthenticatedLimits
	}
	return m
}

// finishServerHardening validates the settings of the HTTP listener added
// for hardening: the header read timeout and the trusted proxies.
func (c *Config) finishServerHardening() error {
	if c.Server.ReadHeaderTimeout <= 0 || c.Server.ReadHeaderTimeout > time.Minute {
		return &Error{Setting: "AUTH_READ_HEADER_TIMEOUT", Value: c.Server.ReadHeaderTimeout.String(), Reason: "must be between 1ms and 1m"}
	}
	nets, err := ParseTrustedProxies(c.Server.TrustedProxies)
	if err != nil {
		return &Error{Setting: "AUTH_TRUSTED_PROXIES", Value: c.Server.TrustedProxies, Reason: err.Error()}
	}
	c.Server.Proxies = nets
	return nil
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
