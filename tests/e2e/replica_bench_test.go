package e2e

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkReplicaPropagation measures how long a change made on one replica
// takes to be answered by another: two auth-server processes on one
// PostgreSQL database and Redis (loopback), AUTH_SYNC_INTERVAL=1h so that
// only pub/sub can deliver. Each iteration grants a permission on replica A
// (and the next one revokes it), then polls GET /api/has_permission on
// replica B until B answers the new decision. It reports the percentiles of
// that time, from the write request's start (so the write itself, a
// PostgreSQL commit, is included), of the part after A acknowledged the
// write, and of the write alone:
//
//	go test -run '^$' -bench BenchmarkReplicaPropagation -benchtime 1000x ./tests/e2e/
func BenchmarkReplicaPropagation(b *testing.B) {
	rs := newReplicaSet(b, 2, "AUTH_SYNC_INTERVAL=1h")
	a, r := rs.nodes[0].s, rs.nodes[1].s
	key := newKey(b)
	a.write(b, key, "POST", "/api/role/editor", true)
	a.write(b, key, "POST", "/api/membership/alice/editor", true)
	if ok, err := r.has(key, "alice", "publish"); err != nil || ok {
		b.Fatalf("alice can publish on B before the first grant: %v, %v", ok, err)
	}
	auth := "Authorization: Bearer " + key
	total := make([]time.Duration, 0, b.N)
	afterAck := make([]time.Duration, 0, b.N)
	writes := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		grant := i%2 == 0
		method := "DELETE"
		if grant {
			method = "POST"
		}
		start := time.Now()
		resp, err := a.send(method, "/api/permission/editor/publish", auth)
		if err != nil {
			b.Fatal(err)
		}
		if ok, err := resultOf(resp); err != nil || !ok {
			b.Fatalf("%s: %v, %v", resp, ok, err)
		}
		acked := time.Now()
		for {
			ok, err := r.has(key, "alice", "publish")
			if err != nil {
				b.Fatal(err)
			}
			if ok == grant {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("change %d not answered by B within 10s", i)
			}
		}
		done := time.Now()
		total = append(total, done.Sub(start))
		afterAck = append(afterAck, done.Sub(acked))
		writes = append(writes, acked.Sub(start))
	}
	b.StopTimer()
	p := func(d []time.Duration, q float64) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		i := int(q*float64(len(d))+0.5) - 1
		return float64(d[max(i, 0)]) / float64(time.Millisecond)
	}
	b.ReportMetric(p(total, 0.50), "p50-ms")
	b.ReportMetric(p(total, 0.99), "p99-ms")
	b.ReportMetric(p(afterAck, 0.50), "after-ack-p50-ms")
	b.ReportMetric(p(afterAck, 0.99), "after-ack-p99-ms")
	b.ReportMetric(p(writes, 0.99), "write-p99-ms")
	if b.N >= 100 {
		b.Logf("%d changes: write to answer on B p50 %s ms, p99 %s ms, max %s ms; after A's answer p50 %s ms, p99 %s ms; "+
			"the write itself p50 %s ms, p99 %s ms",
			b.N, ms(p(total, 0.50)), ms(p(total, 0.99)), ms(p(total, 1)), ms(p(afterAck, 0.50)), ms(p(afterAck, 0.99)),
			ms(p(writes, 0.50)), ms(p(writes, 0.99)))
	}
}

func ms(v float64) string { return fmt.Sprintf("%.2f", v) }
