package fieldcrypt

import (
	"errors"
	"strings"
	"testing"
)

// Test keys: 32+ characters of material that is not a placeholder.
const (
	keyA = "k3Jq9vX2mP7wT4zR8nB5cY1hL6dF0gSa"
	keyB = "Zt8Qw2Ex4Rc6Vb1Nm3Kl5Jh7Gf9Ds0Ap"
	keyC = "u1I2o3P4a5S6d7F8g9H0j1K2l3Z4x5C6"
)

func mustKeyring(t testing.TB, current string, previous ...string) *Keyring {
	t.Helper()
	k, err := NewKeyring(current, previous...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

func mustEncrypt(t testing.TB, k *Keyring, tenant, v string) string {
	t.Helper()
	ct, err := k.Encrypt(tenant, v)
	if err != nil {
		t.Fatalf("Encrypt(%q, %q): %v", tenant, v, err)
	}
	return ct
}

func TestRoundTrip(t *testing.T) {
	k := mustKeyring(t, keyA)
	cases := []struct{ tenant, value string }{
		{"1", "admin"},
		{"1", "role:admin"},
		{"42", "john@example.com"},
		{"42", ""},
		{"7", strings.Repeat("x", 128)},
		{"7", "naïve ünïcode ✓"},
		{"key-check", "auth-encryption-check-v1"},
	}
	for _, tc := range cases {
		ct := mustEncrypt(t, k, tc.tenant, tc.value)
		if !IsEncrypted(ct) || !strings.HasPrefix(ct, Prefix+k.CurrentID()+":") {
			t.Errorf("Encrypt(%q, %q) = %q, want the prefix %q", tc.tenant, tc.value, ct, Prefix+k.CurrentID()+":")
		}
		if tc.value != "" && strings.Contains(ct, tc.value) {
			t.Errorf("Encrypt(%q, %q) = %q holds the clear value", tc.tenant, tc.value, ct)
		}
		got, err := k.Decrypt(tc.tenant, ct)
		if err != nil || got != tc.value {
			t.Errorf("Decrypt(Encrypt(%q, %q)) = %q, %v; want the value back", tc.tenant, tc.value, got, err)
		}
	}
}

func TestDeterministic(t *testing.T) {
	k1, k2 := mustKeyring(t, keyA), mustKeyring(t, keyA)
	for _, v := range []string{"admin", "read", "john"} {
		a, b, c := mustEncrypt(t, k1, "1", v), mustEncrypt(t, k1, "1", v), mustEncrypt(t, k2, "1", v)
		if a != b || a != c {
			t.Errorf("Encrypt(1, %q) gave %q, %q and (another keyring) %q; want one ciphertext", v, a, b, c)
		}
	}
	if a, b := mustEncrypt(t, k1, "1", "admin"), mustEncrypt(t, k1, "1", "admin2"); a == b {
		t.Errorf("two names encrypt alike: %q", a)
	}
}

func TestTenantsDiffer(t *testing.T) {
	k := mustKeyring(t, keyA)
	tenants := []string{"1", "2", "10", "11", "key-check"}
	seen := map[string]string{}
	for _, tenant := range tenants {
		ct := mustEncrypt(t, k, tenant, "admin")
		_, body, _ := strings.Cut(strings.TrimPrefix(ct, Prefix), ":")
		if other, dup := seen[body]; dup {
			t.Errorf("tenants %s and %s encrypt \"admin\" alike: %q", other, tenant, ct)
		}
		seen[body] = tenant
	}
}

func TestKeysDiffer(t *testing.T) {
	a, b := mustKeyring(t, keyA), mustKeyring(t, keyB)
	if a.CurrentID() == b.CurrentID() {
		t.Fatalf("keys A and B have the same id %q", a.CurrentID())
	}
	ca, cb := mustEncrypt(t, a, "1", "admin"), mustEncrypt(t, b, "1", "admin")
	if ca == cb {
		t.Errorf("keys A and B encrypt alike: %q", ca)
	}
	if got, want := KeyID(ca), a.CurrentID(); got != want {
		t.Errorf("KeyID = %q, want %q", got, want)
	}
	if !a.IsCurrent(ca) || a.IsCurrent(cb) || !b.IsCurrent(cb) {
		t.Errorf("IsCurrent does not follow the key id")
	}
}

// TestTampering flips every byte of a ciphertext to several other values:
// each variant must fail to decrypt, with the error that fits where it was
// changed, and never return a value.
func TestTampering(t *testing.T) {
	k := mustKeyring(t, keyA)
	for _, plain := range []string{"a", "ab", "abc", "role:admin", "john@example.com"} {
		ct := mustEncrypt(t, k, "1", plain)
		idEnd := len(Prefix) + len(k.CurrentID())
		for i := 0; i < len(ct); i++ {
			for _, c := range []byte("AB_-az09:.=\n") {
				if ct[i] == c {
					continue
				}
				bad := ct[:i] + string(c) + ct[i+1:]
				got, err := k.Decrypt("1", bad)
				if err == nil {
					t.Errorf("plain %q: byte %d of %q set to %q: Decrypt = %q, nil; want an error", plain, i, ct, c, got)
					continue
				}
				if got != "" {
					t.Errorf("plain %q: byte %d set to %q: Decrypt returned %q with the error", plain, i, c, got)
				}
				var want []error
				switch {
				case i < len(Prefix):
					want = []error{ErrNotEncrypted}
				case i < idEnd:
					want = []error{ErrUnknownKey, ErrTampered}
				default:
					want = []error{ErrTampered}
				}
				if !isAny(err, want) {
					t.Errorf("plain %q: byte %d set to %q: Decrypt error %v, want one of %v", plain, i, c, err, want)
				}
			}
		}
	}
}

func isAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func TestTruncatedAndExtended(t *testing.T) {
	k := mustKeyring(t, keyA)
	ct := mustEncrypt(t, k, "1", "admin")
	for n := len(Prefix); n < len(ct); n++ {
		if _, err := k.Decrypt("1", ct[:n]); err == nil {
			t.Errorf("Decrypt of %q (cut to %d bytes) succeeded", ct[:n], n)
		}
	}
	for _, tail := range []string{"A", "AA", "AAAA", "=", "==", ":", "\n", "\r\n"} {
		if _, err := k.Decrypt("1", ct+tail); !errors.Is(err, ErrTampered) {
			t.Errorf("Decrypt of the ciphertext + %q: %v, want ErrTampered", tail, err)
		}
	}
	// A line break inside the base64 text is not the stored value.
	cut := len(ct) - 4
	if _, err := k.Decrypt("1", ct[:cut]+"\n"+ct[cut:]); !errors.Is(err, ErrTampered) {
		t.Errorf("Decrypt with a line break inside: %v, want ErrTampered", err)
	}
}

func TestMovedTenantFails(t *testing.T) {
	k := mustKeyring(t, keyA)
	ct := mustEncrypt(t, k, "1", "admin")
	for _, other := range []string{"2", "10", "", "1 ", "key-check"} {
		got, err := k.Decrypt(other, ct)
		if !errors.Is(err, ErrTampered) || got != "" {
			t.Errorf("Decrypt in tenant %q of tenant 1's ciphertext = %q, %v; want ErrTampered", other, got, err)
		}
	}
}

func TestUnknownKey(t *testing.T) {
	a, b := mustKeyring(t, keyA), mustKeyring(t, keyB)
	ct := mustEncrypt(t, a, "1", "admin")
	if got, err := b.Decrypt("1", ct); !errors.Is(err, ErrUnknownKey) || got != "" {
		t.Errorf("Decrypt under key B of a key-A ciphertext = %q, %v; want ErrUnknownKey", got, err)
	}
	// A known key id with a body made under another key does not authenticate.
	forged := Prefix + a.CurrentID() + ":" + strings.SplitN(mustEncrypt(t, b, "1", "admin"), ":", 3)[2]
	if got, err := a.Decrypt("1", forged); !errors.Is(err, ErrTampered) || got != "" {
		t.Errorf("Decrypt of a key-B body under key A's id = %q, %v; want ErrTampered", got, err)
	}
}

func TestNotEncrypted(t *testing.T) {
	k := mustKeyring(t, keyA)
	for _, v := range []string{"", "admin", "role:admin", "enc1", "ENC1:" + k.CurrentID() + ":AAAA", "enc2:abc:AAAA"} {
		if got, err := k.Decrypt("1", v); !errors.Is(err, ErrNotEncrypted) || got != "" {
			t.Errorf("Decrypt(%q) = %q, %v; want ErrNotEncrypted", v, got, err)
		}
		if IsEncrypted(v) {
			t.Errorf("IsEncrypted(%q) = true", v)
		}
		if id := KeyID(v); id != "" {
			t.Errorf("KeyID(%q) = %q, want \"\"", v, id)
		}
	}
	for _, v := range []string{"enc1:", "enc1:abc", "enc1:" + k.CurrentID()} {
		if _, err := k.Decrypt("1", v); !errors.Is(err, ErrTampered) {
			t.Errorf("Decrypt(%q): %v, want ErrTampered", v, err)
		}
	}
}

func TestWeakKeys(t *testing.T) {
	cases := []struct {
		name, key string
		ok        bool
	}{
		{"empty", "", false},
		{"short", "k3Jq9vX2mP7wT4zR8nB5cY1hL6dF0gS", false}, // 31 bytes
		{"one byte repeated", strings.Repeat("a", 64), false},
		{"changeme", "changeme-changeme-changeme-changeme", false},
		{"CHANGE_ME upper case", "CHANGE_ME_0123456789abcdef0123456789", false},
		{"secret", "my-secret-encryption-key-0123456789", false},
		{"password", "Password0123456789abcdef0123456789", false},
		{"example", "example-key-0123456789abcdef0123456", false},
		{"default", "default0123456789abcdef0123456789ab", false},
		{"placeholder", "placeholder0123456789abcdef01234567", false},
		{"32 random bytes", keyA, true},
		{"hex of openssl rand -hex 32", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewKeyring(tc.key)
			if got := err == nil; got != tc.ok {
				t.Errorf("NewKeyring(%q): %v, want ok=%v", tc.key, err, tc.ok)
			}
			if !tc.ok && !errors.Is(err, ErrWeakKey) {
				t.Errorf("NewKeyring(%q): %v, want ErrWeakKey", tc.key, err)
			}
			// A weak previous key is refused as well.
			_, err = NewKeyring(keyB, tc.key)
			if tc.key != "" && (err == nil) != tc.ok {
				t.Errorf("NewKeyring(B, %q): %v, want ok=%v", tc.key, err, tc.ok)
			}
		})
	}
	// Blank previous keys are skipped, not refused.
	if _, err := NewKeyring(keyA, "", "  "); err != nil {
		t.Errorf("NewKeyring with blank previous keys: %v", err)
	}
}

func TestVariants(t *testing.T) {
	a, b, c := mustKeyring(t, keyA), mustKeyring(t, keyB), mustKeyring(t, keyC)
	k := mustKeyring(t, keyC, keyA, keyB, keyA, keyC) // duplicates dropped
	vs, err := k.Variants("5", "admin")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{mustEncrypt(t, c, "5", "admin"), mustEncrypt(t, a, "5", "admin"), mustEncrypt(t, b, "5", "admin")}
	if len(vs) != len(want) {
		t.Fatalf("Variants = %q, want %q", vs, want)
	}
	for i := range want {
		if vs[i] != want[i] {
			t.Errorf("Variants[%d] = %q, want %q (current key first, then the previous ones in order)", i, vs[i], want[i])
		}
		if got, err := k.Decrypt("5", vs[i]); err != nil || got != "admin" {
			t.Errorf("Decrypt(Variants[%d]) = %q, %v", i, got, err)
		}
	}
	if enc := mustEncrypt(t, k, "5", "admin"); enc != vs[0] {
		t.Errorf("Encrypt = %q, want the current key's variant %q", enc, vs[0])
	}
	// Only the current key is written; previous ones are read.
	if k.CurrentID() != c.CurrentID() {
		t.Errorf("CurrentID = %q, want key C's %q", k.CurrentID(), c.CurrentID())
	}
	if one, _ := a.Variants("5", "admin"); len(one) != 1 {
		t.Errorf("Variants with one key = %q, want one value", one)
	}
}

func TestConcurrentUse(t *testing.T) {
	k := mustKeyring(t, keyA, keyB)
	done := make(chan error)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				tenant := string(rune('0' + i%10))
				ct, err := k.Encrypt(tenant, "admin")
				if err == nil {
					var got string
					got, err = k.Decrypt(tenant, ct)
					if err == nil && got != "admin" {
						err = errors.New("wrong value " + got)
					}
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// FuzzDecrypt: Decrypt never panics, and whatever it accepts is exactly the
// ciphertext Encrypt makes of the value (nothing else authenticates).
func FuzzDecrypt(f *testing.F) {
	k := mustKeyring(f, keyA, keyB)
	b := mustKeyring(f, keyB)
	for _, v := range []string{"admin", "", "role:admin"} {
		f.Add("1", mustEncrypt(f, k, "1", v))
		f.Add("2", mustEncrypt(f, b, "2", v))
	}
	f.Add("1", "enc1:")
	f.Add("1", "enc1::")
	f.Add("1", "enc1:"+k.CurrentID()+":")
	f.Add("1", "admin")
	f.Fuzz(func(t *testing.T, tenant, v string) {
		got, err := k.Decrypt(tenant, v)
		if err != nil {
			if got != "" {
				t.Fatalf("Decrypt(%q, %q) = %q with error %v", tenant, v, got, err)
			}
			return
		}
		vs, err := k.Variants(tenant, got)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range vs {
			if w == v {
				return
			}
		}
		t.Fatalf("Decrypt(%q, %q) = %q, but that value encrypts to %q", tenant, v, got, vs)
	})
}
