package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// AllowedHostsSetting is the setting that lists the hosts a Guard lets
// through whatever they resolve to; RefusedError messages name it.
const AllowedHostsSetting = "AUTH_WEBHOOK_ALLOWED_HOSTS"

// Resolver looks up a host name's addresses; *net.Resolver is one.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// RefusedError says why a webhook URL is refused. Its Error is a sentence
// fit to show the client that registered the URL.
type RefusedError struct {
	URL    string // the URL as given (host:port when refused while dialing)
	Reason string // a sentence saying why, naming the fix when there is one
	Err    error  // the underlying error (a failed lookup), or nil
}

// Error returns the reason.
func (e *RefusedError) Error() string { return e.Reason }

// Unwrap returns the underlying error, if any.
func (e *RefusedError) Unwrap() error { return e.Err }

// Guard decides which webhook targets may be called. Its zero value is not
// usable; make one with NewGuard. A Guard is safe for concurrent use.
type Guard struct {
	resolver Resolver
	anyPort  map[string]bool            // allowed host → on every port
	ports    map[string]map[string]bool // allowed host → its allowed ports
}

// NewGuard returns a Guard that refuses internal addresses except for the
// hosts in allowed. Each entry is a host name or a literal IP address
// (IPv6 with or without brackets), optionally followed by ":port"; an
// entry without a port allows the host on every port. Names match without
// regard to case or a trailing dot. Empty entries are ignored. resolver
// looks names up; nil means net.DefaultResolver.
func NewGuard(allowed []string, resolver Resolver) *Guard {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	g := &Guard{resolver: resolver, anyPort: map[string]bool{}, ports: map[string]map[string]bool{}}
	for _, e := range allowed {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		host, port := e, ""
		if _, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
			host = strings.Trim(e, "[]")
		} else if h, p, err := net.SplitHostPort(e); err == nil {
			host, port = h, p
		}
		host = normHost(host)
		if port == "" {
			g.anyPort[host] = true
			continue
		}
		if g.ports[host] == nil {
			g.ports[host] = map[string]bool{}
		}
		g.ports[host][port] = true
	}
	return g
}

// ParseAllowedHosts splits a comma-separated list of allowed hosts (the
// form of AllowedHostsSetting) into entries for NewGuard.
func ParseAllowedHosts(list string) []string {
	var out []string
	for e := range strings.SplitSeq(list, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// normHost makes host comparable: a literal IP in its canonical form
// (IPv4-mapped IPv6 as IPv4, without zone), a name in lower case without a
// trailing dot.
func normHost(host string) string {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.WithZone("").Unmap().String()
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// allowed reports whether host on port is allow-listed.
func (g *Guard) allowed(host, port string) bool {
	h := normHost(host)
	return g.anyPort[h] || g.ports[h][port]
}

// CheckURL parses raw and checks it as a webhook target: the scheme is
// http or https, there is a host and no user name or password, the host
// resolves, and, unless the host is allow-listed, none of its addresses is
// internal (private, loopback, link-local, unspecified, multicast, shared
// CGNAT, "this network", reserved, or such an address mapped into IPv6).
// Every refusal is a *RefusedError.
func (g *Guard) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	u, port, err := g.parse(raw)
	if err != nil {
		return nil, err
	}
	host := u.Hostname()
	addrs, err := g.resolve(ctx, host)
	if err != nil {
		return nil, &RefusedError{URL: raw, Reason: fmt.Sprintf("Webhook URL host '%s' does not resolve.", host), Err: err}
	}
	if err := g.check(raw, host, port, addrs); err != nil {
		return nil, err
	}
	return u, nil
}

// parse checks what can be checked of raw without resolving it, and
// returns it with its effective port.
func (g *Guard) parse(raw string) (*url.URL, string, error) {
	refuse := func(format string, args ...any) (*url.URL, string, error) {
		return nil, "", &RefusedError{URL: raw, Reason: fmt.Sprintf(format, args...)}
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return refuse("Webhook URL is malformed: %v.", err)
	}
	var port string
	switch strings.ToLower(u.Scheme) {
	case "http":
		port = "80"
	case "https":
		port = "443"
	case "":
		return refuse("Webhook URL has no scheme; use an absolute http or https URL.")
	default:
		return refuse("Webhook URL scheme '%s' is not allowed; use http or https.", u.Scheme)
	}
	if u.User != nil {
		return refuse("Webhook URL must not contain a user name or password.")
	}
	if u.Hostname() == "" {
		return refuse("Webhook URL has no host.")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return refuse("Webhook URL port '%s' is not a valid port.", p)
		}
		port = p
	}
	return u, port, nil
}

// resolve returns host's addresses: host itself when it is a literal IP,
// else what the resolver finds.
func (g *Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	found, err := g.resolver.LookupIPAddr(ctx, strings.ToLower(host))
	if err != nil {
		return nil, fmt.Errorf("webhook: resolve %s: %w", host, err)
	}
	addrs := make([]netip.Addr, 0, len(found))
	for _, f := range found {
		if a, ok := netip.AddrFromSlice(f.IP); ok {
			// net.IP holds IPv4 addresses in 16 bytes: unmap them.
			addrs = append(addrs, a.Unmap().WithZone(f.Zone))
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("webhook: resolve %s: no addresses", host)
	}
	return addrs, nil
}

// check refuses addrs, the addresses of host, when host on port is not
// allow-listed and any of them is internal.
func (g *Guard) check(raw, host, port string, addrs []netip.Addr) *RefusedError {
	if g.allowed(host, port) {
		return nil
	}
	for _, a := range addrs {
		kind := internal(a)
		if kind == "" {
			continue
		}
		var what string
		if lit, err := netip.ParseAddr(host); err == nil && lit == a {
			what = fmt.Sprintf("Webhook URL host '%s' is %s", host, kind)
		} else {
			what = fmt.Sprintf("Webhook URL host '%s' resolves to %s, %s", host, a, kind)
		}
		return &RefusedError{URL: raw, Reason: fmt.Sprintf("%s; list the host in %s to allow it.", what, AllowedHostsSetting)}
	}
	return nil
}

// Address ranges not covered by netip.Addr's predicates.
var (
	sharedCGNAT = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")     // RFC 1122
	reserved4   = netip.MustParsePrefix("240.0.0.0/4")   // RFC 1112, with 255.255.255.255
	nat64       = []netip.Prefix{
		netip.MustParsePrefix("64:ff9b::/96"),   // RFC 6052 well-known prefix
		netip.MustParsePrefix("64:ff9b:1::/48"), // RFC 8215 local-use prefix
	}
)

// internal names the kind of internal address a is ("a private address"),
// or returns "" for an address that may be called. IPv4 addresses mapped
// into IPv6, or embedded in a NAT64 prefix, are judged as IPv4.
func internal(a netip.Addr) string {
	a = a.WithZone("")
	if a.Is4In6() {
		a = a.Unmap()
	}
	switch {
	case a.IsUnspecified():
		return "an unspecified address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsPrivate():
		return "a private address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.IsMulticast():
		return "a multicast address"
	case sharedCGNAT.Contains(a):
		return "a shared (carrier-grade NAT) address"
	case thisNetwork.Contains(a):
		return "a 'this network' address"
	case reserved4.Contains(a):
		return "a reserved address"
	}
	for _, p := range nat64 {
		if p.Contains(a) {
			b := a.As16()
			return internal(netip.AddrFrom4([4]byte(b[12:])))
		}
	}
	return ""
}
