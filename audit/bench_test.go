package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
)

// BenchmarkRecordDecision measures what recording a check costs the request
// that made it: RecordDecision with AUTH_AUDIT_DECISIONS=all, into a queue
// whose writer discards the batches, from every P at once (as the HTTP
// server calls it). The work the writer does later is not counted here (see
// auditdb's BenchmarkDecisionTrail).
//
//	go test -run '^$' -bench BenchmarkRecordDecision -benchmem ./audit/
func BenchmarkRecordDecision(b *testing.B) {
	k, err := audit.NewKeyring([]byte(testKey))
	if err != nil {
		b.Fatal(err)
	}
	discard := func(context.Context, []audit.Record) error { return nil }
	q := audit.NewQueue(discard, audit.QueueOptions{Size: 100_000, Logger: quietLogger()})
	trail := audit.NewTrail(k, newMemStore(k), q, audit.TrailOptions{Decisions: audit.DecisionsAll})
	done := make(chan error, 1)
	go func() { done <- q.Run(context.Background()) }()
	ctx := audit.WithRequest(context.Background(), audit.Request{ID: "0f3c9a7e-5b1d-4e2a-9c8b-7d6e5f4a3b2c",
		IP: "192.0.2.10", UserAgent: "wrk/4.2.0"})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			allowed := i%2 == 0
			trail.RecordDecision(ctx, audit.Entry{Time: time.Now(), Tenant: "tenant", User: "user-42",
				Action: audit.CheckPermission, Resource: "perm-read", Success: true,
				Details: map[string]any{"status_code": 200, "allowed": allowed}}, allowed)
		}
	})
	b.StopTimer()
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := q.Close(cctx); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
