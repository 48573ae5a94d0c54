package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkBatchCheck compares one POST /api/v2/check of 1 000 pairs with
// the same 1 000 pairs asked one GET /api/v2/check at a time over a
// keep-alive connection, against a real server (SQLite, every decision
// recorded in the audit trail as shipped). It reports decisions per second
// for each and their ratio:
//
//	go test -run '^$' -bench BenchmarkBatchCheck -benchtime 20x ./tests/e2e/
func BenchmarkBatchCheck(b *testing.B) {
	s := startServer(b, serverEnv(filepath.Join(b.TempDir(), "auth.sqlite3")))
	key := newKey(b)
	c := s.client(key)
	rng := rand.New(rand.NewPCG(1, 1000))
	g := buildTenant(b, c, rng)
	pairs := g.randomPairs(rng, 1000)
	body, err := json.Marshal(map[string]any{"checks": pairs})
	if err != nil {
		b.Fatal(err)
	}
	singles := make([]string, len(pairs))
	for i, p := range pairs {
		singles[i] = "/api/v2/check?user=" + url.QueryEscape(p.User) + "&permission=" + url.QueryEscape(p.Permission)
	}
	auth := c.auth()
	var batchTime, singleTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r, err := s.sendBody("POST", "/api/v2/check", body, auth, "Content-Type: application/json")
		if err != nil || r.status != 200 {
			b.Fatalf("batch: %v %s", err, r)
		}
		batchTime += time.Since(start)
		start = time.Now()
		for _, path := range singles {
			r, err := s.send("GET", path, auth)
			if err != nil || r.status != 200 {
				b.Fatalf("single: %v %s", err, r)
			}
		}
		singleTime += time.Since(start)
	}
	b.StopTimer()
	decisions := float64(b.N * len(pairs))
	batchRate, singleRate := decisions/batchTime.Seconds(), decisions/singleTime.Seconds()
	b.ReportMetric(batchRate, "batch-decisions/s")
	b.ReportMetric(singleRate, "single-decisions/s")
	b.ReportMetric(batchRate/singleRate, "ratio")
	b.Logf("%d rounds of %d pairs: batch %s decisions/s, single checks %s decisions/s, ratio %.1f×",
		b.N, len(pairs), fmt.Sprintf("%.0f", batchRate), fmt.Sprintf("%.0f", singleRate), batchRate/singleRate)
}
