package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/ourway/auth/webhook"
)

// fakeResolver answers from a table; a name with several answers gives
// them in turn (the last one repeating), to act out DNS rebinding.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]string
	lookups map[string]int
}

func resolver(table map[string][]string) *fakeResolver {
	r := &fakeResolver{answers: map[string][][]string{}, lookups: map[string]int{}}
	for name, addrs := range table {
		r.answers[name] = [][]string{addrs}
	}
	return r
}

func (r *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := min(r.lookups[host], len(seq)-1)
	r.lookups[host]++
	var out []net.IPAddr
	for _, a := range seq[n] {
		ip, zone, _ := strings.Cut(a, "%")
		out = append(out, net.IPAddr{IP: net.ParseIP(ip), Zone: zone})
	}
	return out, nil
}

func TestGuardAddresses(t *testing.T) {
	tests := []struct {
		addr  string
		kind  string // "" when allowed
		shown string // the address in the refusal, when not addr
	}{
		{"93.184.216.34", "", ""},
		{"2606:2800:220:1:248:1893:25c8:1946", "", ""},
		{"10.0.0.1", "a private address", ""},
		{"172.16.5.4", "a private address", ""},
		{"172.31.255.255", "a private address", ""},
		{"172.32.0.1", "", ""},
		{"192.168.1.1", "a private address", ""},
		{"fd00::1", "a private address", ""},
		{"127.0.0.1", "a loopback address", ""},
		{"127.8.9.10", "a loopback address", ""},
		{"::1", "a loopback address", ""},
		{"169.254.169.254", "a link-local address", ""},
		{"fe80::1", "a link-local address", ""},
		{"fe80::1%eth0", "a link-local address", ""},
		{"0.0.0.0", "an unspecified address", ""},
		{"::", "an unspecified address", ""},
		{"0.1.2.3", "a 'this network' address", ""},
		{"224.0.0.1", "a multicast address", ""},
		{"ff02::1", "a multicast address", ""},
		{"100.64.0.1", "a shared (carrier-grade NAT) address", ""},
		{"100.127.255.254", "a shared (carrier-grade NAT) address", ""},
		{"100.128.0.1", "", ""},
		{"255.255.255.255", "a reserved address", ""},
		{"::ffff:10.0.0.1", "a private address", "10.0.0.1"},
		{"::ffff:127.0.0.1", "a loopback address", "127.0.0.1"},
		{"::ffff:169.254.169.254", "a link-local address", "169.254.169.254"},
		{"::ffff:93.184.216.34", "", ""},
		{"64:ff9b::a9fe:a9fe", "a link-local address", ""}, // NAT64 of 169.254.169.254
		{"64:ff9b::5db8:d822", "", ""},                     // NAT64 of 93.184.216.34
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			g := webhook.NewGuard(nil, resolver(map[string][]string{"hooks.example.com": {tt.addr}}))
			_, err := g.CheckURL(ctx, "https://hooks.example.com/auth")
			if tt.kind == "" {
				if err != nil {
					t.Fatalf("CheckURL refused %s: %v", tt.addr, err)
				}
				return
			}
			var re *webhook.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("CheckURL(%s) = %v, want a *RefusedError", tt.addr, err)
			}
			shown := tt.addr
			if tt.shown != "" {
				shown = tt.shown
			}
			want := fmt.Sprintf("Webhook URL host 'hooks.example.com' resolves to %s, %s; list the host in AUTH_WEBHOOK_ALLOWED_HOSTS to allow it.", shown, tt.kind)
			if re.Error() != want || re.URL != "https://hooks.example.com/auth" {
				t.Fatalf("refusal %q (URL %q)\nwant      %q", re.Error(), re.URL, want)
			}
		})
	}
}

func TestGuardURLs(t *testing.T) {
	r := resolver(map[string][]string{
		"public.test":   {"93.184.216.34"},
		"mixed.test":    {"93.184.216.34", "10.1.2.3"},
		"internal.test": {"10.0.0.5"},
		"ported.test":   {"192.168.0.9"},
	})
	g := webhook.NewGuard([]string{" Internal.Test. ", "ported.test:8443", "10.9.9.9", "[::1]:9000", "fe80::1"}, r)
	tests := []struct {
		url  string
		want string // "" when allowed, else the refusal
	}{
		{"https://public.test/hook", ""},
		{"http://public.test:8080/hook?x=1", ""},
		{"HTTPS://PUBLIC.TEST/hook", ""},
		{"https://internal.test/hook", ""},
		{"http://INTERNAL.test:1234/", ""},
		{"https://ported.test:8443/", ""},
		{"https://ported.test/", "Webhook URL host 'ported.test' resolves to 192.168.0.9, a private address; list the host in AUTH_WEBHOOK_ALLOWED_HOSTS to allow it."},
		{"http://10.9.9.9/", ""},
		{"http://[::1]:9000/", ""},
		{"http://[::1]:9001/", "Webhook URL host '::1' is a loopback address; list the host in AUTH_WEBHOOK_ALLOWED_HOSTS to allow it."},
		{"http://[fe80::1%25eth0]/", ""},
		{"http://10.0.0.1/", "Webhook URL host '10.0.0.1' is a private address; list the host in AUTH_WEBHOOK_ALLOWED_HOSTS to allow it."},
		{"http://[::ffff:10.0.0.1]/", "Webhook URL host '::ffff:10.0.0.1' is a private address; list the host in AUTH_WEBHOOK_ALLOWED_HOSTS to allow it."},
		{"http://169.254.169.254/latest/meta-data", "Webhook URL host '169.254.169.254' is a link-local address; list the host in AUTH_WEBHOOK_ALLOWED_HOSTS to allow it."},
		{"https://mixed.test/", "Webhook URL host 'mixed.test' resolves to 10.1.2.3, a private address; list the host in AUTH_WEBHOOK_ALLOWED_HOSTS to allow it."},
		{"https://nowhere.test/", "Webhook URL host 'nowhere.test' does not resolve."},
		{"ftp://public.test/", "Webhook URL scheme 'ftp' is not allowed; use http or https."},
		{"file:///etc/passwd", "Webhook URL scheme 'file' is not allowed; use http or https."},
		{"public.test/hook", "Webhook URL has no scheme; use an absolute http or https URL."},
		{"https://user:pw@public.test/", "Webhook URL must not contain a user name or password."},
		{"https:///hook", "Webhook URL has no host."},
		{"http:public.test", "Webhook URL has no host."},
		{"https://public.test:0/", "Webhook URL port '0' is not a valid port."},
		{"https://public.test:99999/", "Webhook URL port '99999' is not a valid port."},
		{"http://[::1/", "Webhook URL is malformed: missing ']' in host."},
		{"http://public.test/%zz", "Webhook URL is malformed: invalid URL escape \"%zz\"."},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := g.CheckURL(context.Background(), tt.url)
			if tt.want == "" {
				if err != nil || u == nil {
					t.Fatalf("CheckURL = %v, %v; want allowed", u, err)
				}
				return
			}
			var re *webhook.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("CheckURL = %v, want a *RefusedError", err)
			}
			if re.Error() != tt.want || re.URL != tt.url {
				t.Fatalf("refusal %q (URL %q)\nwant      %q", re.Error(), re.URL, tt.want)
			}
		})
	}
}

func TestGuardLookupErrorWrapped(t *testing.T) {
	_, err := webhook.NewGuard(nil, resolver(nil)).CheckURL(context.Background(), "https://nowhere.test/")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		t.Fatalf("CheckURL = %v, want it to wrap the *net.DNSError", err)
	}
}

func TestParseAllowedHosts(t *testing.T) {
	got := webhook.ParseAllowedHosts(" a.test, ,10.0.0.1:80,[::1]:9000 ,")
	want := []string{"a.test", "10.0.0.1:80", "[::1]:9000"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ParseAllowedHosts = %q, want %q", got, want)
	}
}
