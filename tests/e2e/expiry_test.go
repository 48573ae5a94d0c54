package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// expiryTTL is the lifetime of the time-bound memberships of the test.
const expiryTTL = "2s"

// TestExpiryAcrossReplicas: two replicas whose expiry sweep cannot run (once
// an hour). A membership of bob with a ttl allows on both until its expiry
// instant and denies on both after it, leaving the listings at once, before
// any sweep; the feed says nothing yet. B restarted with a sweep every
// 200ms removes it from the database: the feed shows the expire change,
// the audit trail an EXPIRE_MEMBERSHIP record, and the export no longer has
// the rule. carol's membership, made permanent again before its expiry,
// outlives it.
func TestExpiryAcrossReplicas(t *testing.T) {
	t.Parallel()
	rs := newReplicaSet(t, 2, "AUTH_EXPIRY_SWEEP_INTERVAL=1h", "AUTH_CONSISTENCY_WAIT=20ms")
	a, b := rs.nodes[0].s, rs.nodes[1].s
	key := newKey(t)

	a.v2Must(t, key, "PUT", "/roles/payroll", "", 201)
	r, ans := a.v2Must(t, key, "PUT", "/roles/payroll/permissions/pay", "", 201)
	mustRevision(t, r, ans)

	// bob for expiryTTL; carol for expiryTTL, then permanent.
	sent := time.Now()
	r, ans = a.v2Must(t, key, "PUT", "/roles/payroll/members/bob", `{"ttl":"`+expiryTTL+`"}`, 201)
	putRev := mustRevision(t, r, ans)
	var put struct {
		Created   bool    `json:"created"`
		ExpiresAt *string `json:"expires_at"`
		Role      string  `json:"role"`
		User      string  `json:"user"`
	}
	decodeData(t, r, ans, &put)
	ttl, _ := time.ParseDuration(expiryTTL)
	if !put.Created || put.ExpiresAt == nil || put.Role != "payroll" || put.User != "bob" {
		t.Fatalf("%s: want created with an expires_at", r)
	}
	expiresAt, err := time.Parse(time.RFC3339Nano, *put.ExpiresAt)
	if err != nil || !strings.HasSuffix(*put.ExpiresAt, "Z") {
		t.Fatalf("%s: expires_at is not an RFC 3339 UTC time: %v", r, err)
	}
	if expiresAt.Before(sent.Add(ttl).Add(-time.Second)) || expiresAt.After(time.Now().Add(ttl).Add(time.Second)) {
		t.Errorf("%s: expires_at %v is not %s after the request (sent %v)", r, expiresAt, expiryTTL, sent)
	}
	r, ans = a.v2Must(t, key, "PUT", "/roles/payroll/members/carol", `{"ttl":"`+expiryTTL+`"}`, 201)
	mustRevision(t, r, ans)
	r, ans = a.v2Must(t, key, "PUT", "/roles/payroll/members/carol", "", 200)
	carolRev := mustRevision(t, r, ans)
	var permanent struct {
		Created   bool    `json:"created"`
		ExpiresAt *string `json:"expires_at"`
	}
	decodeData(t, r, ans, &permanent)
	if permanent.Created || permanent.ExpiresAt != nil {
		t.Errorf("%s: want created false, expires_at null (made permanent)", r)
	}

	// Before the expiry instant: allowed on both, listed with its expiry.
	for _, s := range []*server{a, b} {
		d := s.mustCheck(t, key, "bob", "pay", atLeast(carolRev))
		if time.Now().After(expiresAt) {
			t.Fatalf("the checks before the expiry took longer than %s: the machine is too slow for this test", expiryTTL)
		}
		if !d.allowed || d.revision < putRev {
			t.Errorf("on %s before the expiry: bob can pay = %+v; want allowed at revision %d or later", s.base, d, putRev)
		}
		got := memberList(t, s, key, atLeast(carolRev))
		if want := "bob until " + expiresAt.UTC().Format(time.RFC3339Nano) + ", carol"; got != want {
			t.Errorf("on %s before the expiry: members of payroll %q, want %q", s.base, got, want)
		}
	}

	// After it: denied on both and gone from the listings, with no sweep.
	eventually(t, ttl+5*time.Second, "the clock passes expires_at", func() (string, error) {
		if time.Now().After(expiresAt) {
			return "", nil
		}
		return "now " + time.Now().UTC().Format(time.RFC3339Nano), nil
	})
	for _, s := range []*server{a, b} {
		for _, consistency := range []string{"", atLeast(carolRev), "full"} {
			if d := s.mustCheck(t, key, "bob", "pay", consistency); d.allowed {
				t.Errorf("on %s after the expiry (consistency %q): bob can pay", s.base, consistency)
			}
			if d := s.mustCheck(t, key, "carol", "pay", consistency); !d.allowed {
				t.Errorf("on %s after bob's expiry (consistency %q): carol, made permanent, cannot pay", s.base, consistency)
			}
		}
		if got := memberList(t, s, key, atLeast(carolRev)); got != "carol" {
			t.Errorf("on %s after the expiry: members of payroll %q, want %q", s.base, got, "carol")
		}
	}
	if ops := feedOps(t, a, key); slices.Contains(ops, "expire") {
		t.Errorf("the feed has an expire change while no sweep can run: %v", ops)
	}
	// carol's membership is stated twice: time-bound, then permanent.
	var carol []string
	items, _, err := a.feedAll(key, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.User == "carol" {
			exp, err := expiryKey(it.ExpiresAt)
			if err != nil {
				t.Fatal(err)
			}
			carol = append(carol, fmt.Sprintf("%s %s %q", it.Op, it.Role, exp))
		}
	}
	if len(carol) != 2 || !strings.HasPrefix(carol[0], "add_member payroll ") || carol[0] == `add_member payroll ""` || carol[1] != `add_member payroll ""` {
		t.Errorf("carol's changes in the feed %q: want add_member with an expiry, then add_member without", carol)
	}

	// B comes back with a sweep every 200ms.
	rs.nodes[1].env = withEnv(rs.nodes[1].env, "AUTH_EXPIRY_SWEEP_INTERVAL=200ms")
	rs.nodes[1].s.stop(t)
	rs.nodes[1].restart(t)
	b = rs.nodes[1].s
	for _, s := range []*server{a, b} {
		if d := s.mustCheck(t, key, "bob", "pay", atLeast(carolRev)); d.allowed {
			t.Errorf("on %s after the restart: bob can pay", s.base)
		}
	}
	var expired feedItem
	eventually(t, 10*time.Second, "the expire change in the feed", func() (string, error) {
		items, _, err := a.feedAll(key, 0, 100)
		if err != nil {
			return "", err
		}
		for _, it := range items {
			if it.Op == "expire" {
				expired = it
				return "", nil
			}
		}
		return fmt.Sprintf("feed: %s", itemsText(items)), nil
	})
	if expired.Role != "payroll" || expired.User != "bob" || expired.Permission != "" || expired.Revision <= carolRev {
		t.Errorf("expire change %s: want role payroll, user bob, after revision %d", expired, carolRev)
	}
	es := a.client(key).waitAudit(t, "action=EXPIRE_MEMBERSHIP", "an EXPIRE_MEMBERSHIP record", func(es []auditEntry) bool { return len(es) > 0 })
	if len(es) != 1 || !es[0].Success {
		t.Errorf("EXPIRE_MEMBERSHIP records:\n%s\nwant one, successful", dumpEntries(es))
	}
	if ops := feedOps(t, a, key); strings.Count(strings.Join(ops, " "), "expire") != 1 {
		t.Errorf("feed ops %v: want one expire (carol's permanent membership does not expire)", ops)
	}
	for _, s := range []*server{a, b} {
		exp, rev, err := s.exported(key, atLeast(expired.Revision))
		if err != nil {
			t.Fatal(err)
		}
		if rev < expired.Revision {
			t.Errorf("export on %s at revision %d, want %d or later", s.base, rev, expired.Revision)
		}
		if got, want := links(exp.members, false), "payroll carol"; got != want {
			t.Errorf("export on %s after the sweep: memberships %q, want %q", s.base, got, want)
		}
		if d := s.mustCheck(t, key, "carol", "pay", atLeast(expired.Revision)); !d.allowed {
			t.Errorf("on %s after the sweep: carol cannot pay", s.base)
		}
	}
	db := rs.openDB(t)
	var rows int
	if err := db.QueryRow(`SELECT count(*) FROM casbin_rule WHERE ptype = 'g' AND v0 = 'bob'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("%d rules of bob left in the database after the sweep", rows)
	}
}

// decodeData decodes data of a v2 answer.
func decodeData(t testing.TB, r response, a v2Answer, v any) {
	t.Helper()
	if err := json.Unmarshal(a.Data, v); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
}

// memberList lists the members of payroll on s as "user[ until expiry], …".
func memberList(t testing.TB, s *server, key, consistency string) string {
	t.Helper()
	items, _, err := s.listAll(key, "/roles/payroll/members?consistency="+url.QueryEscape(consistency))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		line := it.User
		if it.ExpiresAt != nil {
			exp, err := expiryKey(it.ExpiresAt)
			if err != nil {
				t.Fatal(err)
			}
			line += " until " + exp
		}
		out = append(out, line)
	}
	return strings.Join(out, ", ")
}

// feedOps lists the ops of the tenant's whole feed on s.
func feedOps(t testing.TB, s *server, key string) []string {
	t.Helper()
	items, _, err := s.feedAll(key, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, it := range items {
		ops = append(ops, it.Op)
	}
	return ops
}
