package e2e

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// keyCacheTTL is AUTH_KEY_CACHE_TTL of the key tests: revocations made by
// another process take effect within it.
const keyCacheTTL = 100 * time.Millisecond

// tenantCLI runs `auth-server tenant args…` against the server's database
// while it runs.
func (s *server) tenantCLI(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	return runBinary(t, s.env, 30*time.Second, append([]string{"tenant"}, args...)...)
}

var createdKeyRE = regexp.MustCompile(`(?m)^client key: ([0-9a-f-]{36})$`)

// createTenant runs `auth-server tenant create` and returns the new key.
func (s *server) createTenant(t testing.TB) string {
	t.Helper()
	code, out, errOut := s.tenantCLI(t, "create")
	m := createdKeyRE.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("tenant create: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	return m[1]
}

// waitRefused polls GET /api/roles with cred until it answers 401 with msg,
// and returns when that happened.
func (s *server) waitRefused(t testing.TB, cred, msg string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := s.send("GET", "/api/roles", "Authorization: Bearer "+cred)
		if err != nil {
			t.Fatal(err)
		}
		if r.status == 401 {
			expectError(t, r, 401, msg)
			return time.Now()
		}
		if r.status != 200 {
			t.Fatalf("while waiting for a refusal: %s", r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still accepted %v later, want 401 %q", within, msg)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// TestRegisteredKeysOnly: with AUTH_REGISTERED_KEYS_ONLY only keys made by
// `auth-server tenant create` work; `tenant revoke` ends a key within
// AUTH_KEY_CACHE_TTL, its tokens with it.
func TestRegisteredKeysOnly(t *testing.T) {
	t.Parallel()
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		testRegisteredKeysOnly(t, sqliteServer)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		skipHeavyInShort(t)
		t.Parallel()
		testRegisteredKeysOnly(t, postgresServer)
	})
}

func testRegisteredKeysOnly(t *testing.T, newServer factory) {
	s := newServer(t, "AUTH_REGISTERED_KEYS_ONLY=true", "AUTH_KEY_CACHE_TTL="+keyCacheTTL.String())
	unknown := newKey(t)
	uc := s.client(unknown)
	for _, prefix := range prefixes {
		expectError(t, uc.get(t, prefix+"/roles"), 401, msgUnknownKey)
		expectError(t, uc.post(t, prefix+"/role/admin"), 401, msgUnknownKey)
		expectError(t, uc.post(t, prefix+"/token"), 401, msgUnknownKey)
		expectError(t, uc.post(t, prefix+"/keys/rotate"), 401, msgUnknownKey)
	}
	// Upper case is the same unknown key; a token forged for it is refused
	// for the same reason.
	expectError(t, s.client(strings.ToUpper(unknown)).get(t, "/api/roles"), 401, msgUnknownKey)
	forged := forge(t, jwt.SigningMethodHS256, []byte(testJWTSecret), claimsFor(t, unknown, time.Now()))
	expectError(t, s.client(forged).get(t, "/api/roles"), 401, msgUnknownKey)

	key := s.createTenant(t)
	kc := s.client(key)
	expect(t, kc.get(t, "/api/roles"), 200, res(`[]`))
	mustResult(t, kc.post(t, "/api/role/admin"), true)
	mustResult(t, s.client(strings.ToUpper(key)).post(t, "/api/membership/john/admin"), true)
	sameSet(t, "members", resultField(t, kc.get(t, "/api/members/admin"), "user"), []string{"john"})
	tok := s.issueToken(t, key, "")
	checkTok := s.issueToken(t, key, "check")
	expect(t, s.client(tok).get(t, "/api/roles"), 200, res(`[{"description":null,"role":"admin"}]`))
	// Every other key is still unknown: the registered tenant did not open
	// the door to namespaces.
	expectError(t, uc.get(t, "/api/roles"), 401, msgUnknownKey)

	// A second tenant, and the listing: ids, handle fingerprints, one
	// active key each; never a client key.
	key2 := s.createTenant(t)
	code, out, errOut := s.tenantCLI(t, "list")
	if code != 0 {
		t.Fatalf("tenant list: exit %d\n%s%s", code, out, errOut)
	}
	for _, k := range []string{key, key2} {
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, keyHash(t, k)[:16]) {
				line = l
			}
		}
		if f := strings.Fields(line); len(f) != 5 || f[1] != f[0] || f[4] != "1" {
			t.Errorf("tenant list: no line \"ID DOMAIN(=ID) %s… CREATED 1\" for a created tenant:\n%s", keyHash(t, k)[:16], out)
		}
		if strings.Contains(out, k) || strings.Contains(out, strings.ReplaceAll(k, "-", "")) {
			t.Errorf("tenant list shows a client key:\n%s", out)
		}
	}
	if strings.Contains(out, keyHash(t, key)) {
		t.Errorf("tenant list shows a whole key hash, want a fingerprint:\n%s", out)
	}

	// Revocation by another process: refused within the cache TTL, with
	// the tokens issued for the key.
	code, out, errOut = s.tenantCLI(t, "revoke", strings.ToUpper(key))
	if code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("tenant revoke: exit %d\n%s%s", code, out, errOut)
	}
	revoked := time.Now()
	refused := s.waitRefused(t, key, msgRevoked, 5*time.Second)
	if d := refused.Sub(revoked); d > keyCacheTTL+time.Second {
		t.Errorf("revoked key accepted for %v, want at most about AUTH_KEY_CACHE_TTL (%v)", d, keyCacheTTL)
	}
	for _, cred := range []string{key, strings.ToUpper(key), tok, checkTok} {
		c := s.client(cred)
		expectError(t, c.get(t, "/api/roles"), 401, msgRevoked)
		expectError(t, c.post(t, "/api/v1/role/after"), 401, msgRevoked)
	}
	expectError(t, s.requestToken(t, key, ""), 401, msgRevoked)
	expectError(t, s.client(key).post(t, "/api/keys/rotate"), 401, msgRevoked)
	// The other tenant is untouched.
	expect(t, s.client(key2).get(t, "/api/roles"), 200, res(`[]`))

	code, out, _ = s.tenantCLI(t, "list")
	if code != 0 || !regexp.MustCompile(`(?m)^\S+\s+\S+\s+`+keyHash(t, key)[:16]+`\s+\S+\s+0$`).MatchString(out) {
		t.Errorf("tenant list after revoke: exit %d, want 0 active keys for the revoked tenant:\n%s", code, out)
	}

	// Failures of the CLI.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"revoke", key}, "no such active key"},
		{[]string{"revoke", unknown}, "no such active key"},
		{[]string{"revoke", "not-a-key"}, "UUID4"},
		{[]string{"revoke"}, "Usage"},
		{[]string{"create", "extra"}, "Usage"},
		{[]string{"frobnicate"}, "Usage"},
		{nil, "Usage"},
	} {
		code, out, errOut := s.tenantCLI(t, tc.args...)
		if code == 0 || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("tenant %v: exit %d, want non-zero with %q\n%s%s", tc.args, code, tc.want, out, errOut)
		}
		if strings.Contains(out+errOut, unknown) {
			t.Errorf("tenant %v echoes the client key", tc.args)
		}
	}
}

type rotateReply struct {
	Code int `json:"code"`
	Data struct {
		NewKey          string `json:"new_key"`
		OldKeyExpiresAt string `json:"old_key_expires_at"`
	} `json:"data"`
	Message string `json:"message"`
	Success bool   `json:"success"`
}

// rotate calls POST /api/keys/rotate with key.
func (s *server) rotate(t testing.TB, key string) (string, time.Time) {
	t.Helper()
	r := s.client(key).post(t, "/api/keys/rotate")
	if keys, err := topKeys(r.body); err != nil || strings.Join(keys, ",") != "code,data,message,success,timestamp" {
		t.Errorf("rotate body keys = %v (%v): %s", keys, err, r.body)
	}
	var rr rotateReply
	decode(t, r, &rr)
	if rr.Code != 200 || !rr.Success || rr.Message != "Client key rotated" {
		t.Errorf("rotate envelope: %s", r.body)
	}
	if _, err := hex.DecodeString(strings.ReplaceAll(rr.Data.NewKey, "-", "")); err != nil || len(rr.Data.NewKey) != 36 ||
		rr.Data.NewKey[14] != '4' || strings.ToLower(rr.Data.NewKey) != rr.Data.NewKey || rr.Data.NewKey == key {
		t.Fatalf("new_key %q: want a fresh lower-case UUID4", rr.Data.NewKey)
	}
	exp, err := time.Parse(time.RFC3339Nano, rr.Data.OldKeyExpiresAt)
	if err != nil || !strings.HasSuffix(rr.Data.OldKeyExpiresAt, "Z") {
		t.Fatalf("old_key_expires_at %q: want an RFC 3339 UTC time (%v)", rr.Data.OldKeyExpiresAt, err)
	}
	return rr.Data.NewKey, exp
}

func TestKeyRotationSQLite(t *testing.T) {
	t.Parallel()
	testKeyRotation(t, sqliteServer)
}

func TestKeyRotationPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testKeyRotation(t, postgresServer)
}

// testKeyRotation: with no grace (the default) the old key and its tokens
// are refused at once; the new key is the same tenant (rules, members,
// audit chain); no key is stored in clear; the rotation is audited.
func testKeyRotation(t *testing.T, newServer factory) {
	s := newServer(t, "AUTH_KEY_CACHE_TTL="+keyCacheTTL.String(), "AUTH_LOG_LEVEL=debug")
	k1 := newKey(t)
	c1 := s.client(k1)
	setupTenant(t, s, k1)
	mustResult(t, c1.post(t, "/api/membership/jane%40example.com/base"), true)
	before := snapshot(t, c1)
	// Wait for the decision records too, so the comparison below is exact.
	c1.waitAudit(t, "", "the tenant's records", func(es []auditEntry) bool { return len(es) >= 7 })
	auditBefore := c1.auditAll(t, "")
	tok1, check1 := s.issueToken(t, k1, ""), s.issueToken(t, k1, "check")

	// Nothing to rotate for a tenant without data; tokens may not rotate.
	expectError(t, s.client(newKey(t)).post(t, "/api/keys/rotate"), 409, "This tenant has no data yet: there is nothing to rotate.")
	expectError(t, s.client(tok1).post(t, "/api/keys/rotate"), 403, msgNeedsKey)
	expectError(t, s.client(check1).post(t, "/api/keys/rotate"), 403, msgCheckScope)

	// Upper case is the same key.
	k2, expires := s.rotate(t, strings.ToUpper(k1))
	if d := time.Since(expires); d < -2*time.Second || d > 10*time.Second {
		t.Errorf("old_key_expires_at = %v, want now (no grace)", expires)
	}
	for _, cred := range []string{k1, strings.ToUpper(k1), tok1, check1} {
		for _, prefix := range prefixes {
			expectError(t, s.client(cred).get(t, prefix+"/roles"), 401, msgRevoked)
			expectError(t, s.client(cred).post(t, prefix+"/role/after"), 401, msgRevoked)
		}
	}
	expectError(t, s.requestToken(t, k1, ""), 401, msgRevoked)
	expectError(t, c1.post(t, "/api/keys/rotate"), 401, msgRevoked)

	// The new key is the same tenant.
	c2 := s.client(k2)
	after := snapshot(t, c2)
	for p, b := range before {
		if after[p] != b {
			t.Errorf("GET %s with the new key:\n got: %s\nwant: %s", p, after[p], b)
		}
	}
	tok2 := s.issueToken(t, k2, "")
	if _, c := unverified(t, tok2); c["tenant"] != keyHash(t, k1) || c["ckh"] != keyHash(t, k2) {
		t.Errorf("token of the new key: tenant %v ckh %v; want the tenant's handle and the new key's hash", c["tenant"], c["ckh"])
	}
	mustResult(t, s.client(tok2).post(t, "/api/role/after"), true)
	mustResult(t, c2.post(t, "/api/permission/after/deploy"), true)

	// The audit trail continues: the old records, then ROTATE_KEY and the
	// new key's changes, in one chain.
	// The refusals of the two tokens are recorded as failed rotations.
	var rotations, refusals []auditEntry
	all := c2.waitAudit(t, "", "ROTATE_KEY, the two refusals and the new writes", func(es []auditEntry) bool {
		rotations, refusals = nil, nil
		created := false
		for _, e := range es {
			switch {
			case e.Action == "ROTATE_KEY" && e.Success:
				rotations = append(rotations, e)
			case e.Action == "ROTATE_KEY":
				refusals = append(refusals, e)
			case e.Action == "CREATE_ROLE" && e.Resource == "after":
				created = true
			}
		}
		return len(rotations) >= 1 && len(refusals) >= 2 && created
	})
	seqs := map[int64]auditEntry{}
	for _, e := range all {
		seqs[e.Seq] = e
	}
	var maxBefore int64
	for _, e := range auditBefore {
		if got, ok := seqs[e.Seq]; !ok || got.Action != e.Action || got.Resource != e.Resource {
			t.Errorf("record seq %d (%s %s) missing from the trail read with the new key", e.Seq, e.Action, e.Resource)
		}
		maxBefore = max(maxBefore, e.Seq)
	}
	if len(rotations) != 1 || len(refusals) != 2 {
		t.Errorf("%d successful and %d refused ROTATE_KEY records, want 1 and 2:\n%s", len(rotations), len(refusals), dumpEntries(all))
	}
	for _, e := range rotations {
		if e.Seq <= maxBefore || e.Resource != "client_key" || fmt.Sprint(e.Details["grace_seconds"]) != "0" {
			t.Errorf("ROTATE_KEY record: %+v, want one after seq %d with grace_seconds 0", e, maxBefore)
		}
	}
	for _, e := range refusals {
		if e.Details["reason"] != "forbidden" || fmt.Sprint(e.Details["status_code"]) != "403" {
			t.Errorf("refused ROTATE_KEY record: %+v, want reason forbidden, status 403", e)
		}
	}

	// A second rotation chains the same way.
	k3, _ := s.rotate(t, k2)
	expectError(t, c2.get(t, "/api/roles"), 401, msgRevoked)
	expectError(t, s.client(tok2).get(t, "/api/roles"), 401, msgRevoked)
	sameSet(t, "roles with the third key", resultField(t, s.client(k3).get(t, "/api/roles"), "role"), []string{"admin", "base", "after"})

	// The chain verifies, whole and for the tenant named by any of its keys.
	s.stop(t)
	// Two tenants: this one, and the fresh key whose 409 was recorded.
	out := mustVerify(t, s.env)
	if !strings.Contains(out, "2 tenant(s)") {
		t.Errorf("audit verify: want two tenants:\n%s", out)
	}
	for _, k := range []string{k1, k2, k3} {
		out := mustVerify(t, s.env, "--tenant", k)
		if !regexp.MustCompile(`: [1-9]\d* records, chain intact`).MatchString(out) {
			t.Errorf("audit verify --tenant (key %d of 3): want the tenant's records:\n%s", slicesIndex([]string{k1, k2, k3}, k)+1, out)
		}
	}

	// No key in clear anywhere: database, SQLite files, log.
	keys := []string{k1, k2, k3}
	var needles []string
	var raw [][]byte
	for _, k := range keys {
		plain := strings.ReplaceAll(k, "-", "")
		needles = append(needles, k, strings.ToUpper(k), plain, strings.ToUpper(plain))
		b, _ := hex.DecodeString(plain)
		raw = append(raw, b)
	}
	db := s.openDB(t)
	if len(findInDB(t, db, s.dbType, []string{keyHash(t, k2)})) == 0 {
		t.Errorf("the new key's hash is in no table: the scan looks at the wrong data")
	}
	for _, f := range findInDB(t, db, s.dbType, needles) {
		t.Errorf("client key in clear in the database: %s", f)
	}
	if s.dbType == "sqlite" {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			b, err := os.ReadFile(s.dbPath + suffix)
			if err != nil {
				continue
			}
			for i, k := range keys {
				if bytes.Contains(b, raw[i]) || bytes.Contains(b, []byte(k)) || bytes.Contains(b, []byte(strings.ReplaceAll(k, "-", ""))) {
					t.Errorf("file auth.sqlite3%s holds client key %d of 3", suffix, i+1)
				}
			}
		}
	}
	log := s.stderr.String()
	if !strings.Contains(log, `"level":"DEBUG"`) {
		t.Errorf("no debug line in the server log; the log scan covers less than intended")
	}
	for _, n := range needles {
		if strings.Contains(log, n) {
			t.Errorf("server log holds a client key")
		}
	}
}

func slicesIndex(list []string, v string) int {
	for i, x := range list {
		if x == v {
			return i
		}
	}
	return -1
}

// TestKeyRotationGrace: with AUTH_KEY_ROTATION_GRACE the old key and its
// tokens work until the grace period ends, then are refused; the new key
// works throughout.
func TestKeyRotationGrace(t *testing.T) {
	t.Parallel()
	const grace = time.Second
	s := sqliteServer(t, "AUTH_KEY_ROTATION_GRACE="+grace.String(), "AUTH_KEY_CACHE_TTL=1h")
	k1 := newKey(t)
	setupTenant(t, s, k1)
	tok1 := s.issueToken(t, k1, "")
	start := time.Now()
	k2, expires := s.rotate(t, k1)
	if d := expires.Sub(start); d < grace-time.Second || d > grace+2*time.Second {
		t.Errorf("old_key_expires_at is %v after the rotation, want about %v", d, grace)
	}
	// Within the grace period both keys and the old token work (unless the
	// machine was too slow to ask in time).
	for _, cred := range []string{k1, tok1, k2} {
		r := s.client(cred).get(t, "/api/roles")
		if time.Now().Before(expires.Add(-200*time.Millisecond)) && r.status != 200 {
			t.Errorf("within the grace period: %s", r)
		}
	}
	// Then the old key and its token are refused, even though the cache
	// TTL is long: the expiry is not cached away.
	refused := s.waitRefused(t, k1, msgRevoked, grace+5*time.Second)
	if refused.Before(expires.Add(-50 * time.Millisecond)) {
		t.Errorf("old key refused at %v, before its expiry %v", refused, expires)
	}
	expectError(t, s.client(tok1).get(t, "/api/roles"), 401, msgRevoked)
	sameSet(t, "roles with the new key", resultField(t, s.client(k2).get(t, "/api/roles"), "role"), []string{"admin", "base"})
	if r := s.client(s.issueToken(t, k2, "")).get(t, "/api/roles"); r.status != 200 {
		t.Errorf("token of the new key: %s", r)
	}
}
