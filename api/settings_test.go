package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ourway/auth/api"
)

func TestParseTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" for an error
	}{
		{"", "[]"},
		{" , ,", "[]"},
		{"127.0.0.1/32", "[127.0.0.1/32]"},
		{"10.1.2.3", "[10.1.2.3/32]"},
		{"::1", "[::1/128]"},
		{"::ffff:10.0.0.1", "[10.0.0.1/32]"},
		{"2001:db8::/32,192.168.0.0/16", "[2001:db8::/32 192.168.0.0/16]"},
		{"10.0.0.0/8;172.16.0.0/12", ""},
		{"10.0.0.1/8", ""},
		{"::/0", ""},
		{"300.1.1.1", ""},
		{"10.0.0.0/", ""},
	} {
		got, err := api.ParseTrustedProxies(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseTrustedProxies(%q) = %v, want an error", tc.in, got)
		case tc.want != "" && err != nil:
			t.Errorf("ParseTrustedProxies(%q): %v", tc.in, err)
		case tc.want != "" && fmt.Sprint(got) != tc.want:
			t.Errorf("ParseTrustedProxies(%q) = %v, want %s", tc.in, got, tc.want)
		}
	}
}

func FuzzParseTrustedProxies(f *testing.F) {
	for _, s := range []string{"", "10.0.0.0/8", "127.0.0.1, ::1", "fd00::/8,10.0.0.1", "0.0.0.0/0", "1.2.3.4/33", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nets, err := api.ParseTrustedProxies(s)
		if err != nil {
			if nets != nil || strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("ParseTrustedProxies(%q) = %v, %q", s, nets, err)
			}
			return
		}
		var parts []string
		for _, n := range nets {
			ones, bits := n.Mask.Size()
			if ones == 0 || (bits != 32 && bits != 128) || len(n.IP) != bits/8 {
				t.Fatalf("ParseTrustedProxies(%q) accepted %v", s, n)
			}
			if !n.IP.Equal(n.IP.Mask(n.Mask)) {
				t.Fatalf("ParseTrustedProxies(%q) accepted %v with host bits", s, n)
			}
			parts = append(parts, n.String())
		}
		// The canonical form reads back as the same networks.
		again, err := api.ParseTrustedProxies(strings.Join(parts, ","))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(nets) {
			t.Fatalf("ParseTrustedProxies(%q) = %v; read back: %v, %v", s, nets, again, err)
		}
	})
}
