package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/policy"
)

// BenchmarkGate is what the performance gate of CI compares with its
// committed baseline (tests/bench/testdata/gate-baseline.txt): a check as
// the server answers it (the policy lookup and the decision's audit record,
// written by the queue in the background as in production) and a write (a
// grant or revoke with its audit record in the same transaction), both on
// SQLite. Keep the names stable: the gate matches them with the baseline.
//
//	go test -run '^$' -bench '^BenchmarkGate$' -count 6 ./tests/bench/
func BenchmarkGate(b *testing.B) {
	f := newGate(b, audit.DecisionsAll)
	ctx := context.Background()
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			q := f.qs[i%len(f.qs)]
			if _, err := f.checks.HasPermission(ctx, f.key, q[0], q[1]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			perm := fmt.Sprintf("gate-%d", i%256)
			var err error
			if (i/256)%2 == 0 {
				_, err = f.st.svc.Grant(ctx, f.key, "role-0", perm)
			} else {
				_, err = f.st.svc.Revoke(ctx, f.key, "role-0", perm)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// gate is the tenant the gate measures: 20 roles, 200 grants and 400
// memberships over 100 users, with the decisions recorded by the mode
// given (the gate records every one).
type gate struct {
	st     *stack
	checks *decision.Policy
	key    policy.KeyHash
	qs     [][2]string
}

// gateKey is the client key of the gate's tenant.
const gateKey = "2b7e1f0c-9d4a-4e3b-8c5f-6a7d8e9f0a1b"

func newGate(b *testing.B, decisions audit.Decisions) *gate {
	b.Helper()
	st := newStack(b, "sqlite", decisions)
	key, err := policy.ParseClientKey(gateKey)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(15, 15))
	for i := 0; i < 200; i++ {
		if _, err := st.svc.Grant(ctx, key, fmt.Sprintf("role-%d", i%20), fmt.Sprintf("perm-%d", rng.IntN(100))); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 400; i++ {
		if _, err := st.svc.AddMember(ctx, key, fmt.Sprintf("user-%d", i%100), fmt.Sprintf("role-%d", rng.IntN(20))); err != nil {
			b.Fatal(err)
		}
	}
	f := &gate{st: st, checks: decision.New(st.svc, decision.NewLog(st.trail)), key: key}
	for i := 0; i < 1024; i++ {
		f.qs = append(f.qs, [2]string{fmt.Sprintf("user-%d", rng.IntN(100)), fmt.Sprintf("perm-%d", rng.IntN(100))})
	}
	return f
}
