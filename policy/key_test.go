package policy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ourway/auth/policy"
)

func TestParseClientKey(t *testing.T) {
	const v4 = "0f3c6a2e-1b7d-4c59-9e0a-6d2f8b1c3a47"
	sum := sha256.Sum256([]byte(v4))
	wantHash := policy.KeyHash(hex.EncodeToString(sum[:]))
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"v4 lower case", v4, true},
		{"v4 upper case", strings.ToUpper(v4), true},
		{"v4 mixed case", "0F3c6A2e-1b7D-4c59-9E0a-6d2f8B1c3a47", true},
		{"variant 8", "0f3c6a2e-1b7d-4c59-8e0a-6d2f8b1c3a47", true},
		{"variant b", "0f3c6a2e-1b7d-4c59-be0a-6d2f8b1c3a47", true},
		{"variant A upper", "0F3C6A2E-1B7D-4C59-AE0A-6D2F8B1C3A47", true},
		{"v1 UUID", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", false},
		{"v5 UUID", "886313e1-3b8a-5372-9b90-0c9aee199e5d", false},
		{"nil UUID", "00000000-0000-0000-0000-000000000000", false},
		{"wrong variant 7 (NCS)", "0f3c6a2e-1b7d-4c59-7e0a-6d2f8b1c3a47", false},
		{"wrong variant c (Microsoft)", "0f3c6a2e-1b7d-4c59-ce0a-6d2f8b1c3a47", false},
		{"braces", "{" + v4 + "}", false},
		{"urn", "urn:uuid:" + v4, false},
		{"32 hex digits", strings.ReplaceAll(v4, "-", ""), false},
		{"empty", "", false},
		{"trailing newline", v4 + "\n", false},
		{"leading space", " " + v4, false},
		{"hyphen moved", "0f3c6a2e1-b7d-4c59-9e0a-6d2f8b1c3a47", false},
		{"non-hex digit", "0f3c6a2e-1b7d-4c59-9e0a-6d2f8b1c3a4g", false},
		{"36 bytes of junk", strings.Repeat("-", 36), false},
		{"multibyte", "0f3c6a2e-1b7d-4c59-9e0a-6d2f8b1c3aé", false},
		{"JWT-shaped", "eyJhbGciOiJIUzI1NiJ9.e30.sig", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := policy.ParseClientKey(tc.in)
			if !tc.ok {
				if err == nil || !errors.Is(err, policy.ErrInvalidClientKey) || got != "" {
					t.Errorf("ParseClientKey(%q) = %q, %v; want \"\", ErrInvalidClientKey", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseClientKey(%q): %v", tc.in, err)
			}
			if strings.EqualFold(tc.in, v4) && got != wantHash {
				t.Errorf("ParseClientKey(%q) = %q, want the SHA-256 of the lower-case key %q", tc.in, got, wantHash)
			}
			if strings.Contains(strings.ToLower(string(got)), strings.ToLower(tc.in)) {
				t.Errorf("the hash contains the key")
			}
		})
	}
}

func FuzzParseClientKey(f *testing.F) {
	for _, s := range []string{
		"0f3c6a2e-1b7d-4c59-9e0a-6d2f8b1c3a47", "0F3C6A2E-1B7D-4C59-9E0A-6D2F8B1C3A47",
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8", "", "{}", strings.Repeat("-", 36),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := policy.ParseClientKey(s)
		if err != nil {
			if got != "" {
				t.Errorf("ParseClientKey(%q) returned %q with an error", s, got)
			}
			return
		}
		// Accepted: the canonical 8-4-4-4-12 form of a version-4, RFC 4122
		// variant UUID, and the hash of its lower-case form.
		k := strings.ToLower(s)
		if len(k) != 36 || k[8] != '-' || k[13] != '-' || k[18] != '-' || k[23] != '-' ||
			k[14] != '4' || !strings.ContainsRune("89ab", rune(k[19])) {
			t.Fatalf("ParseClientKey accepted %q", s)
		}
		for i, c := range k {
			if i != 8 && i != 13 && i != 18 && i != 23 && !strings.ContainsRune("0123456789abcdef", c) {
				t.Fatalf("ParseClientKey accepted %q (byte %d)", s, i)
			}
		}
		sum := sha256.Sum256([]byte(k))
		if string(got) != hex.EncodeToString(sum[:]) {
			t.Fatalf("ParseClientKey(%q) = %q, not the hash of the lower-case key", s, got)
		}
		if again, err := policy.ParseClientKey(strings.ToUpper(s)); err != nil || again != got {
			t.Fatalf("upper case of %q: %q, %v; want the same tenant", s, again, err)
		}
	})
}

func TestNameValidators(t *testing.T) {
	for _, tc := range []struct {
		in               string
		user, role, perm bool
	}{
		{"alice", true, true, true},
		{"Alice_01-x", true, true, true},
		{"alice@example.com", true, false, false},
		{"a+b", true, false, false},
		{"a.b", true, false, false},
		{"", false, false, false},
		{"a b", false, false, false},
		{"a\n", false, false, false},
		{"\na", false, false, false},
		{"a:b", false, false, false},
		{"role:admin", false, false, false},
		{"a*", false, false, false},
		{"a/b", false, false, false},
		{"é", false, false, false},
		{"a\x00", false, false, false},
		{strings.Repeat("a", 64), true, true, true},
		{strings.Repeat("a", 65), false, false, true},
		{strings.Repeat("a", 128), false, false, true},
		{strings.Repeat("a", 129), false, false, false},
	} {
		if got := policy.ValidUser(tc.in); got != tc.user {
			t.Errorf("ValidUser(%q) = %v, want %v", tc.in, got, tc.user)
		}
		if got := policy.ValidRole(tc.in); got != tc.role {
			t.Errorf("ValidRole(%q) = %v, want %v", tc.in, got, tc.role)
		}
		if got := policy.ValidPermission(tc.in); got != tc.perm {
			t.Errorf("ValidPermission(%q) = %v, want %v", tc.in, got, tc.perm)
		}
	}
}

// inClass reports whether every byte of s is an ASCII letter or digit or
// one of extra, and s has 1 to limit bytes.
func inClass(s, extra string, limit int) bool {
	if len(s) < 1 || len(s) > limit {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// The patterns of SPEC §6, as regular expressions over the whole string.
var (
	specUser       = regexp.MustCompile(`\A[A-Za-z0-9_.@+-]{1,64}\z`)
	specRole       = regexp.MustCompile(`\A[A-Za-z0-9_-]{1,64}\z`)
	specPermission = regexp.MustCompile(`\A[A-Za-z0-9_-]{1,128}\z`)
)

func FuzzNameValidators(f *testing.F) {
	for _, s := range []string{"alice", "a@b.c", "role:x", "a\n", "", strings.Repeat("z", 65), "é", "a*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []struct {
			name  string
			valid func(string) bool
			spec  *regexp.Regexp
			extra string
			limit int
		}{
			{"ValidUser", policy.ValidUser, specUser, "_.@+-", 64},
			{"ValidRole", policy.ValidRole, specRole, "_-", 64},
			{"ValidPermission", policy.ValidPermission, specPermission, "_-", 128},
		} {
			got := v.valid(s)
			if want := v.spec.MatchString(s); got != want {
				t.Errorf("%s(%q) = %v, the pattern %s says %v (utf8 %v, %d bytes)", v.name, s, got, v.spec, want, utf8.ValidString(s), len(s))
			}
			// Anything outside the class, and anything over the limit, is refused.
			if got && !inClass(s, v.extra, v.limit) {
				t.Errorf("%s(%q) accepts a character outside its class or more than %d bytes", v.name, s, v.limit)
			}
		}
	})
}
