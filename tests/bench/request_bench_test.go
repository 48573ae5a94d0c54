package bench

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// BenchmarkRequest is one GET /api/has_permission through the whole HTTP
// handler as the server wires it with the shipped settings (CORS on,
// request metrics, key resolution, the unauthenticated limit, every
// decision recorded), without a network: the CPU and the allocations a
// check costs above the policy lookup.
//
//	go test -run '^$' -bench '^BenchmarkRequest$' -benchmem ./tests/bench/
func BenchmarkRequest(b *testing.B) {
	for _, mode := range []audit.Decisions{audit.DecisionsAll, audit.DecisionsNone} {
		b.Run("audit-"+string(mode), func(b *testing.B) {
			f := newGate(b, mode)
			unauth, err := ratelimit.ParseLimits("1000 per hour")
			if err != nil {
				b.Fatal(err)
			}
			lim, err := ratelimit.New(ratelimit.Options{Limits: map[string][]ratelimit.Limit{ratelimit.Unauthenticated: unauth}, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			recorder := decision.NewLog(f.st.trail)
			srv := api.New(api.Config{AllowCORS: true, CORSOrigins: []string{"*"}}, api.Deps{
				Policy: decision.New(f.st.svc, recorder), Audit: f.st.trail, Metrics: metrics.New(),
				Keys:        policy.NewKeys(policydb.New(f.st.db), policy.KeyOptions{Recorder: f.st.trail}),
				RateLimiter: lim, Logger: quiet,
			})
			h := srv.Handler()
			reqs := make([]*http.Request, len(f.qs))
			for i, q := range f.qs {
				r := httptest.NewRequest(http.MethodGet, "/api/has_permission/"+q[0]+"/"+q[1], nil)
				r.Header.Set("Authorization", "Bearer "+gateKey)
				r.RemoteAddr = "127.0.0.1:40000"
				reqs[i] = r
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, reqs[i%len(reqs)])
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
