package secret

import "testing"

func TestWeak(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"empty", "", true},
		{"31 bytes", "5b3f8e2a9c1d7046e8a2c4f6b8d0e2a", true},
		{"one repeated character", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},
		{"placeholder changeme", "my-ChangeMe-5b3f8e2a9c1d7046e8a2c4f6b8d0", true},
		{"placeholder secret", "5b3f8e2a9c1d7046-SECRET-e8a2c4f6b8d0e2a4", true},
		{"original default", "default_secret_key_for_development_x", true},
		{"two bytes repeated", "abababababababababababababababababab", true},
		{"three bytes repeated, cut short", "xyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzx", true},
		{"16 bytes repeated", "5b3f8e2a9c1d7046" + "5b3f8e2a9c1d7046", true},
		{"ascending hex twice", "0123456789abcdef0123456789abcdef", true},
		{"ascending run of 8", "k3Jq9vX2" + "01234567" + "mP7wT4zR8nB5cY1h", true},
		{"descending run of 8", "k3Jq9vX2" + "hgfedcba" + "mP7wT4zR8nB5cY1h", true},
		{"seven distinct bytes", "abcdabcdefgabcdefgfedcbagfedcbagaacdbe", true},
		{"ascending run of 7 is allowed", "k3Jq9vX2" + "0123456" + "mP7wT4zR8nB5cY1hW", false},
		{"eight distinct bytes", "a1b2c3d4a2b3c4d1a3b4c1d2a4b1c2d3", false},
		{"random hex", "5b3f8e2a9c1d7046e8a2c4f6b8d0e2a4", false},
		{"openssl rand -hex 32", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", false},
		{"openssl rand -base64 32", "q8Vd1xR0sZ6m+2Lk9pYwT3bN7cHf4uGj5eA/KiOoXyE=", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Weak(tc.in); got != tc.want {
				t.Errorf("Weak(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
