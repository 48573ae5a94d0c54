package e2e

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

// The new enemy problem: a user removed from a role on one replica must not
// be allowed on another that has not heard of the removal yet, when the
// caller hands the revision of the removal over (consistency=at_least).

const (
	// enemyRounds is the number of add-revoke-check rounds in each phase
	// with a fault on C's link.
	enemyRounds = 500
	// healthyRounds is the number of rounds with C's link healthy.
	healthyRounds = 200
	// enemyDelay is how late replica C gets Redis's messages in the
	// delayed phase.
	enemyDelay = 500 * time.Millisecond
)

// TestNewEnemy: three replicas; C's link to Redis is slowed down by
// enemyDelay in one phase and cut in the other. In each round bob is added
// to payroll (which grants pay) on A and removed again on A; C, asked with
// the revision of the removal, must deny every time and say it answered at
// that revision or later. Before the removal C is brought up to the
// addition (asked at its revision, it must allow), so that it knows bob as
// a member: how often C, asked right after the removal without the
// revision, still allows is the new-enemy window, measured and reported
// only.
func TestNewEnemy(t *testing.T) {
	t.Parallel()
	rs := newReplicaSet(t, 3, "AUTH_CONSISTENCY_WAIT=5ms", "AUTH_SYNC_INTERVAL=1h")
	a, c := rs.nodes[0].s, rs.nodes[2].s
	cLink := rs.nodes[2].proxy
	key := newKey(t)

	r, ans := a.v2Must(t, key, "PUT", "/roles/payroll", "", 201)
	mustRevision(t, r, ans)
	r, ans = a.v2Must(t, key, "PUT", "/roles/payroll/permissions/pay", "", 201)
	setup := mustRevision(t, r, ans)
	// Every replica has the tenant in memory before the rounds.
	for _, s := range rs.servers() {
		if d := s.mustCheck(t, key, "bob", "pay", atLeast(setup)); d.allowed || d.revision < setup {
			t.Fatalf("%s: bob can pay = %+v before any membership, at least revision %d", s.base, d, setup)
		}
	}

	phases := []struct {
		name   string
		start  func(t *testing.T)
		end    func(t *testing.T)
		rounds int
	}{
		{
			// No fault: how often a check right after a change misses it
			// when Redis is healthy.
			name: "healthy", rounds: healthyRounds,
			start: func(t *testing.T) {}, end: func(t *testing.T) {},
		},
		{
			name: "delayed", rounds: enemyRounds,
			start: func(t *testing.T) { cLink.SetDelay(enemyDelay) },
			end:   func(t *testing.T) { cLink.SetDelay(0) },
		},
		{
			name: "cut", rounds: enemyRounds,
			start: func(t *testing.T) {
				cLink.Cut()
				eventually(t, 5*time.Second, "C reports Redis down", func() (string, error) {
					v, err := c.metric("auth_replica_redis_connected")
					if err != nil || v == 0 {
						return "", err
					}
					return fmt.Sprintf("auth_replica_redis_connected = %v", v), nil
				})
			},
			end: func(t *testing.T) {
				cLink.Restore()
				rs.nodes[2].waitLive(t)
			},
		},
	}
	stale := map[string]int{}
	for _, ph := range phases {
		ok := t.Run(ph.name, func(t *testing.T) {
			ph.start(t)
			defer ph.end(t)
			var last int64
			for i := 0; i < ph.rounds; i++ {
				r, ans := a.v2Must(t, key, "PUT", "/roles/payroll/members/bob", "", 201)
				added := mustRevision(t, r, ans)
				if added <= last {
					t.Fatalf("round %d: the membership took revision %d, after revision %d", i, added, last)
				}
				// The other way round: the addition is seen too, and C now
				// holds bob as a member.
				if d := c.mustCheck(t, key, "bob", "pay", atLeast(added)); !d.allowed || d.revision < added {
					t.Fatalf("round %d: on C at least revision %d, bob can pay = %+v; want allowed at revision %d or later", i, added, d, added)
				}
				r, ans = a.v2Must(t, key, "DELETE", "/roles/payroll/members/bob", "", 200)
				revoked := mustRevision(t, r, ans)
				if revoked <= added {
					t.Fatalf("round %d: the removal took revision %d, after the addition's %d", i, revoked, added)
				}
				last = revoked
				// Without the revision first: asked with it, C catches up
				// and would no longer be stale.
				if d := c.mustCheck(t, key, "bob", "pay", ""); d.allowed {
					stale[ph.name]++
				}
				d := c.mustCheck(t, key, "bob", "pay", atLeast(revoked))
				if d.allowed || d.revision < revoked {
					t.Fatalf("round %d: on C at least revision %d, bob can pay = %+v; want denied at revision %d or later", i, revoked, d, revoked)
				}
				if i%100 == 50 {
					// Listings honour the revision too.
					items, rev, err := c.listAll(key, "/roles/payroll/members?consistency="+url.QueryEscape(atLeast(revoked)))
					if err != nil {
						t.Fatal(err)
					}
					if len(items) != 0 || rev < revoked {
						t.Fatalf("round %d: on C at least revision %d, members of payroll = %+v at revision %d; want none, at %d or later", i, revoked, items, rev, revoked)
					}
				}
			}
			testConsistencyForms(t, rs, key, last)
		})
		if !ok {
			return // the next phase would start from a state this one left behind
		}
	}
	reportLine(t, fmt.Sprintf("new-enemy stale-without-token healthy=%d/%d delayed=%d/%d cut=%d/%d",
		stale["healthy"], healthyRounds, stale["delayed"], enemyRounds, stale["cut"], enemyRounds))
}

// testConsistencyForms checks, while C lags, the errors of the consistency
// parameter and consistency=full. latest is the tenant's latest revision.
func testConsistencyForms(t *testing.T, rs *replicaSet, key string, latest int64) {
	t.Helper()
	a, c := rs.nodes[0].s, rs.nodes[2].s
	ahead := latest + 1_000_000
	r, _ := c.v2Must(t, key, "GET", checkPath("bob", "pay", atLeast(ahead)), "", 400)
	expectV2Error(t, r, 400, "revision_ahead", map[string]any{"revision": float64(ahead), "latest": float64(latest)})
	for _, bad := range []string{"bogus", "at_least:", "at_least:-1", "at_least:x", "at_least:1.5", "FULL", "full:3", "at_most:1"} {
		r, _ := c.v2Must(t, key, "GET", checkPath("bob", "pay", bad), "", 400)
		expectV2Error(t, r, 400, "invalid_parameter", map[string]any{"parameter": "consistency"})
	}

	// full: C answers from the database's latest revision, which it has
	// not heard of.
	user := fmt.Sprintf("full-%d", latest)
	r, ans := a.v2Must(t, key, "PUT", "/roles/payroll/members/"+user, "", 201)
	wrote := mustRevision(t, r, ans)
	if d := c.mustCheck(t, key, user, "pay", "full"); !d.allowed || d.revision < wrote {
		t.Errorf("on C with consistency=full after a membership at revision %d: %s can pay = %+v; want allowed at revision %d or later", wrote, user, d, wrote)
	}
	r, ans = a.v2Must(t, key, "DELETE", "/roles/payroll/members/"+user, "", 200)
	wrote = mustRevision(t, r, ans)
	if d := c.mustCheck(t, key, user, "pay", "full"); d.allowed || d.revision < wrote {
		t.Errorf("on C with consistency=full after the removal at revision %d: %s can pay = %+v; want denied at revision %d or later", wrote, user, d, wrote)
	}
	// minimize_latency spelt out is the default form.
	if _, err := c.check(key, "bob", "pay", "minimize_latency"); err != nil {
		t.Error(err)
	}
}
