package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Messages of key management.
const (
	msgKeyRotated = "This key has already been rotated."
	msgKeyInGrace = "This key has been rotated and is in its grace period: it can still make API calls, " +
		"but only an active key can issue tokens, rotate or revoke keys. Use the new key."
)

func TestConcurrentRotationSQLite(t *testing.T) {
	t.Parallel()
	testConcurrentRotation(t, sqliteServer)
}

func TestConcurrentRotationPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testConcurrentRotation(t, postgresServer)
}

// testConcurrentRotation: 50 simultaneous POST /api/keys/rotate with one
// key yield exactly one new key, the others 409; the old key, in its grace
// period, still makes API calls but can neither rotate, mint a token nor
// revoke keys; its holder cannot mint keys by rotating it again.
func testConcurrentRotation(t *testing.T, newServer factory) {
	s := newServer(t, "AUTH_KEY_ROTATION_GRACE=1h", "AUTH_KEY_CACHE_TTL="+keyCacheTTL.String())
	k1 := newKey(t)
	setupTenant(t, s, k1)
	const n = 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		statusN = map[int]int{}
		bodies  []string
	)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := s.send("POST", "/api/keys/rotate", "Authorization: Bearer "+k1)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			statusN[r.status]++
			if r.status != 200 && !strings.Contains(string(r.body), msgKeyRotated) {
				bodies = append(bodies, r.String())
			}
		}()
	}
	close(start)
	wg.Wait()
	if statusN[200] != 1 || statusN[409] != n-1 {
		t.Fatalf("%d concurrent rotations of one key: statuses %v, want one 200 and %d 409", n, statusN, n-1)
	}
	if len(bodies) > 0 {
		t.Errorf("refused rotations without %q: %v", msgKeyRotated, bodies)
	}
	// The tenant has exactly two keys: the old one in grace, one new one.
	out := s.tenantKeys(t, 1)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1]+lines[2], " grace ") || !strings.Contains(lines[1]+lines[2], " active ") {
		t.Fatalf("tenant keys after %d concurrent rotations: want one grace and one active key:\n%s", n, out)
	}
	active := keyIDOf(t, out, "active")

	// The old key in its grace period: ordinary calls work, the rest not.
	c1 := s.client(k1)
	sameSet(t, "roles with the key in grace", resultField(t, c1.get(t, "/api/roles"), "role"), []string{"admin", "base"})
	mustResult(t, c1.post(t, "/api/role/during-grace"), true)
	for _, prefix := range prefixes {
		expectError(t, c1.post(t, prefix+"/keys/rotate"), 409, msgKeyRotated)
		expectError(t, s.requestTokenAt(t, prefix, k1), 403, msgKeyInGrace)
		expectError(t, c1.post(t, prefix+"/keys/revoke_others"), 403, msgKeyInGrace)
	}
	if got := s.tenantKeys(t, 1); strings.Count(got, "\n") != 3 || !strings.Contains(got, active) {
		t.Errorf("refused calls changed the keys:\n%s", got)
	}
}

// requestTokenAt sends POST <prefix>/token with cred.
func (s *server) requestTokenAt(t testing.TB, prefix, cred string) response {
	t.Helper()
	return s.do(t, "POST", prefix+"/token", "Authorization: Bearer "+cred)
}

// tenantKeys runs `auth-server tenant keys --tenant id`.
func (s *server) tenantKeys(t testing.TB, id int) string {
	t.Helper()
	code, out, errOut := s.tenantCLI(t, "keys", "--tenant", strconv.Itoa(id))
	if code != 0 {
		t.Fatalf("tenant keys: exit %d\n%s%s", code, out, errOut)
	}
	return out
}

var keysLineRE = regexp.MustCompile(`(?m)^([0-9a-f]{12})\s+(active|grace|expired|revoked)\s+(\S+)\s+(\S+)\s+(\S+)$`)

// keyIDOf returns the id of the one key in state st in a tenant keys
// listing.
func keyIDOf(t testing.TB, out, st string) string {
	t.Helper()
	id := ""
	for _, m := range keysLineRE.FindAllStringSubmatch(out, -1) {
		if m[2] == st {
			if id != "" {
				t.Fatalf("two %s keys in:\n%s", st, out)
			}
			id = m[1]
		}
	}
	if id == "" {
		t.Fatalf("no %s key in:\n%s", st, out)
	}
	return id
}

// TestTenantKeysAndRevocation: `tenant keys` lists a tenant's keys (id,
// state, created, expires, last use; never a key); `tenant revoke --key-id`
// and `--all --tenant` revoke without the key, refused within the cache
// TTL; POST /api/keys/revoke_others revokes the caller's other keys; every
// revocation is audited.
func TestTenantKeysAndRevocation(t *testing.T) {
	t.Parallel()
	s := sqliteServer(t, "AUTH_REGISTERED_KEYS_ONLY=true", "AUTH_KEY_ROTATION_GRACE=1h", "AUTH_KEY_CACHE_TTL="+keyCacheTTL.String())
	k1 := s.createTenant(t)
	c1 := s.client(k1)
	mustResult(t, c1.post(t, "/api/role/admin"), true) // a use: recorded as the last use
	k2, expires := s.rotate(t, k1)
	k3, _ := s.rotate(t, k2)
	k4 := s.createTenant(t) // tenant 2

	out := s.tenantKeys(t, 1)
	if !strings.HasPrefix(out, "KEY ID") {
		t.Errorf("tenant keys: no header:\n%s", out)
	}
	rows := keysLineRE.FindAllStringSubmatch(out, -1)
	if len(rows) != 3 {
		t.Fatalf("tenant keys: want 3 key lines:\n%s", out)
	}
	want := []struct {
		key, state string
	}{{k1, "grace"}, {k2, "grace"}, {k3, "active"}}
	for i, w := range want {
		r := rows[i]
		if r[1] != keyHash(t, w.key)[:12] || r[2] != w.state {
			t.Errorf("tenant keys line %d: %q, want id %s state %s", i+1, r[0], keyHash(t, w.key)[:12], w.state)
		}
		if _, err := time.Parse(time.RFC3339, r[3]); err != nil {
			t.Errorf("tenant keys line %d: created %q is not RFC 3339", i+1, r[3])
		}
	}
	if rows[0][4] != expires.UTC().Truncate(time.Second).Format(time.RFC3339) || rows[2][4] != "-" {
		t.Errorf("tenant keys: expires %q and %q, want %s and -", rows[0][4], rows[2][4], expires.UTC().Format(time.RFC3339))
	}
	// The first key was used (the role, the rotation); the last never.
	if _, err := time.Parse(time.RFC3339, rows[0][5]); err != nil || rows[2][5] != "-" {
		t.Errorf("tenant keys: last use %q and %q, want a time and -:\n%s", rows[0][5], rows[2][5], out)
	}
	for _, k := range []string{k1, k2, k3} {
		if strings.Contains(out, k) || strings.Contains(out, keyHash(t, k)) {
			t.Errorf("tenant keys shows a key or a whole key hash:\n%s", out)
		}
	}

	// Revoke k2 by its id, without the key: refused within the TTL.
	code, stdout, errOut := s.tenantCLI(t, "revoke", "--key-id", strings.ToUpper(keyHash(t, k2)[:12]))
	if code != 0 || !strings.Contains(stdout, "revoked") {
		t.Fatalf("tenant revoke --key-id: exit %d\n%s%s", code, stdout, errOut)
	}
	revoked := time.Now()
	refused := s.waitRefused(t, k2, msgRevoked, 5*time.Second)
	if d := refused.Sub(revoked); d > keyCacheTTL+time.Second {
		t.Errorf("revoked key accepted for %v, want at most about AUTH_KEY_CACHE_TTL (%v)", d, keyCacheTTL)
	}
	if got := keyIDOf(t, s.tenantKeys(t, 1), "revoked"); got != keyHash(t, k2)[:12] {
		t.Errorf("revoked key id %s, want %s", got, keyHash(t, k2)[:12])
	}

	// revoke_others with the active key: k1 (in grace) goes, k3 stays.
	r := s.client(k3).post(t, "/api/v1/keys/revoke_others")
	var rr struct {
		Data struct {
			Revoked int `json:"revoked"`
		} `json:"data"`
		Message string `json:"message"`
	}
	decode(t, r, &rr)
	if r.status != 200 || rr.Data.Revoked != 1 || rr.Message != "Revoked 1 other client key(s)" {
		t.Fatalf("revoke_others: %s, want 200 with 1 revoked", r)
	}
	s.waitRefused(t, k1, msgRevoked, 5*time.Second)
	expect(t, s.client(k3).get(t, "/api/roles"), 200, res(`[{"description":null,"role":"admin"}]`))
	// A token may not, whatever its scope.
	tok := s.issueToken(t, k3, "")
	expectError(t, s.client(tok).post(t, "/api/keys/revoke_others"), 403, msgNeedsKey)

	// --all: every live key of tenant 1; tenant 2 untouched.
	code, stdout, errOut = s.tenantCLI(t, "revoke", "--all", "--tenant", "1")
	if code != 0 || !strings.Contains(stdout, "1 key(s) of tenant 1 revoked") {
		t.Fatalf("tenant revoke --all: exit %d\n%s%s", code, stdout, errOut)
	}
	s.waitRefused(t, k3, msgRevoked, 5*time.Second)
	expectError(t, s.client(tok).get(t, "/api/roles"), 401, msgRevoked)
	expect(t, s.client(k4).get(t, "/api/roles"), 200, res(`[]`))
	if out := s.tenantKeys(t, 1); strings.Count(out, " revoked ") != 3 {
		t.Errorf("tenant keys after --all: want 3 revoked keys:\n%s", out)
	}

	// Every revocation is in the tenant's audit chain, which verifies.
	s.stop(t)
	out = mustVerify(t, s.env, "--tenant", k4)
	if !strings.Contains(out, "chain intact") {
		t.Errorf("audit verify: %s", out)
	}
	out = mustVerify(t, s.env)
	if !strings.Contains(out, "chain intact") {
		t.Errorf("audit verify: %s", out)
	}

	// Failures of the CLI.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keys"}, "Usage"},
		{[]string{"keys", "--tenant", "99"}, "no tenant 99"},
		{[]string{"keys", "--tenant", "x"}, "invalid value"},
		{[]string{"revoke", "--key-id", "abc"}, "key id"},
		{[]string{"revoke", "--key-id", keyHash(t, k4)[:12], "--tenant", "1"}, "no such active key"},
		{[]string{"revoke", "--key-id", keyHash(t, k2)[:12]}, "no such active key"},
		{[]string{"revoke", "--all"}, "Usage"},
		{[]string{"revoke", "--all", "--tenant", "99"}, "no tenant 99"},
		{[]string{"revoke", "--all", "--tenant", "1", k4}, "Usage"},
		{[]string{"revoke", "--key-id", keyHash(t, k4)[:12], "--all", "--tenant", "2"}, "Usage"},
	} {
		code, out, errOut := s.tenantCLI(t, tc.args...)
		if code == 0 || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("tenant %v: exit %d, want non-zero with %q\n%s%s", tc.args, code, tc.want, out, errOut)
		}
	}
}
