package secret

import "testing"

func TestWeak(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", true},
		{"0123456789abcdef0123456789abcde", true}, // 31 bytes
		{"0123456789abcdef0123456789abcdef", false},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},
		{"my-ChangeMe-0123456789abcdef01234567", true},
		{"0123456789abcdef-SECRET-0123456789ab", true},
		{"default_secret_key_for_development_x", true},
		{"5b3f8e2a9c1d7046e8a2c4f6b8d0e2a4", false},
	} {
		if got := Weak(tc.in); got != tc.want {
			t.Errorf("Weak(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
