package api

import (
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestIPExtractor(t *testing.T) {
	cidrs := func(ss ...string) []*net.IPNet {
		var out []*net.IPNet
		for _, s := range ss {
			_, n, err := net.ParseCIDR(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		trusted []*net.IPNet
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies: the peer", nil, "10.0.0.5:1234", []string{"203.0.113.9"}, "10.0.0.5"},
		{"no proxies, loopback peer", nil, "127.0.0.1:1234", []string{"203.0.113.9"}, "127.0.0.1"},
		{"untrusted peer's header ignored", cidrs("10.0.0.0/8"), "192.0.2.1:1234", []string{"203.0.113.9"}, "192.0.2.1"},
		{"private peer not trusted unless listed", cidrs("10.0.0.0/8"), "192.168.1.1:1234", []string{"203.0.113.9"}, "192.168.1.1"},
		{"loopback not trusted unless listed", cidrs("10.0.0.0/8"), "127.0.0.1:1234", []string{"203.0.113.9"}, "127.0.0.1"},
		{"trusted peer: the forwarded client", cidrs("10.0.0.0/8"), "10.0.0.5:1234", []string{"203.0.113.9"}, "203.0.113.9"},
		{"rightmost untrusted wins over a spoofed left", cidrs("10.0.0.0/8"), "10.0.0.5:1234", []string{"1.1.1.1, 203.0.113.9"}, "203.0.113.9"},
		{"chain of trusted proxies", cidrs("10.0.0.0/8"), "10.0.0.5:1234", []string{"203.0.113.9, 10.1.1.1", "10.2.2.2"}, "203.0.113.9"},
		{"garbage in the header: the peer", cidrs("10.0.0.0/8"), "10.0.0.5:1234", []string{"203.0.113.9, bogus"}, "10.0.0.5"},
		{"trusted peer, no header", cidrs("10.0.0.0/8"), "10.0.0.5:1234", nil, "10.0.0.5"},
		{"IPv6", cidrs("fd00::/8"), "[fd00::1]:1234", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv6 in brackets", cidrs("fd00::/8"), "[fd00::1]:1234", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"entry with a port", cidrs("10.0.0.0/8"), "10.0.0.5:1234", []string{"203.0.113.9:5678"}, "203.0.113.9"},
		{"IPv6 entry with a port", cidrs("fd00::/8"), "[fd00::1]:1234", []string{"[2001:db8::7]:443"}, "2001:db8::7"},
		{"trusted entry with a port skipped", cidrs("10.0.0.0/8"), "10.0.0.5:1234", []string{"203.0.113.9, 10.1.1.1:80"}, "203.0.113.9"},
		{"bad port: the peer", cidrs("10.0.0.0/8"), "10.0.0.5:1234", []string{"203.0.113.9:http:80"}, "10.0.0.5"},
		{"every entry trusted: the leftmost", cidrs("10.0.0.0/8"), "10.0.0.5:1234", []string{"10.9.9.9:80, 10.1.1.1"}, "10.9.9.9"},
		{"empty entry: the peer", cidrs("10.0.0.0/8"), "10.0.0.5:1234", []string{"203.0.113.9, "}, "10.0.0.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "/", nil)
			req.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := ipExtractor(tc.trusted)(req); got != tc.want {
				t.Errorf("client IP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRateLimitIP(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"::ffff:203.0.113.9", "203.0.113.9"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::9", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an ip", "not an ip"},
	} {
		if got := rateLimitIP(tc.in); got != tc.want {
			t.Errorf("rateLimitIP(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"application/json", true},
		{"Application/JSON; charset=utf-8", true},
		{"application/problem+json", true},
		{"text/json", false},
		{"application/jsonx", false},
		{"application/x-www-form-urlencoded", false},
		{"", false},
		{"application/json; =", false},
	} {
		if got := isJSON(tc.in); got != tc.want {
			t.Errorf("isJSON(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// requestIDRE is the request ids kept from callers, as a regular expression:
// wellFormedID must accept exactly these.
var requestIDRE = regexp.MustCompile(`\A[A-Za-z0-9._:-]{1,128}\z`)

func TestWellFormedID(t *testing.T) {
	ids := []string{"", "a", "req-1", "A.b_c:d-9", strings.Repeat("x", 128), strings.Repeat("x", 129),
		"has space", "tab\t", "new\nline", "é", "semi;colon", "slash/", "ünïcode", "\x00", "a\u2028b"}
	for b := 0; b < 256; b++ {
		ids = append(ids, "id"+string(rune(b)), string([]byte{byte(b)}))
	}
	for _, id := range ids {
		if got, want := wellFormedID(id), requestIDRE.MatchString(id); got != want {
			t.Errorf("wellFormedID(%q) = %v, want %v", id, got, want)
		}
	}
}

func FuzzWellFormedID(f *testing.F) {
	f.Add("req-1")
	f.Add("a b")
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := wellFormedID(id), requestIDRE.MatchString(id); got != want {
			t.Fatalf("wellFormedID(%q) = %v, want %v", id, got, want)
		}
	})
}
