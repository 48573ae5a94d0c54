package e2e

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
)

// tenantCount is the number of tenants in the server's database.
func tenantCount(t *testing.T, s *server) int {
	t.Helper()
	code, stdout, stderr := runBinary(t, s.env, 30*time.Second, "tenant", "list")
	if code != 0 {
		t.Fatalf("auth-server tenant list: exit %d: %s", code, stderr)
	}
	return strings.Count(strings.TrimSpace(stdout), "\n") // less the header
}

// A flood of new client keys from one address is limited: past its budget
// a write that would create a tenant is answered 429 (with Retry-After and
// the limit's headers) and creates nothing, while existing tenants keep
// writing and reading, and reads of unknown tenants (which create nothing)
// are not counted. Another address has a budget of its own, until the
// service's global budget is spent.
func TestTenantCreationLimit(t *testing.T) {
	s := rateServer(t, "AUTH_TENANT_CREATION_LIMIT=5 per minute", "AUTH_TENANT_CREATION_LIMIT_GLOBAL=8 per minute",
		"AUTH_TRUSTED_PROXIES=127.0.0.1")
	fromA, fromB := "X-Forwarded-For: 203.0.113.1", "X-Forwarded-For: 198.51.100.2"
	existing := s.client(newKey(t))
	expect(t, existing.call(t, "POST", "/api/role/admin", fromA), 200, res("true")) // creation 1 of A

	const flood = 300
	created, limited := 0, 0
	for i := 0; i < flood; i++ {
		r := s.client(newKey(t)).call(t, "POST", "/api/role/admin", fromA)
		switch r.status {
		case 200:
			created++
		case 429:
			if limited == 0 {
				// 5 per minute frees a creation every 12 s, counted from the
				// first: the wait is 12 s less the time the test took since.
				retry := creationRetry(t, r, "5 per minute", 12)
				rateHeaders(t, r, 5, 0, "5;w=60")
				if got := r.header.Get("Retry-After"); got != strconv.Itoa(retry) {
					t.Errorf("Retry-After = %q, want %d (as the message says)", got, retry)
				}
			}
			limited++
		default:
			t.Fatalf("creating request %d: %v", i, r)
		}
		if i%50 == 0 {
			// The existing tenant is unaffected: its writes and reads pass.
			expect(t, existing.call(t, "POST", "/api/permission/admin/p"+strconv.Itoa(i), fromA), 200, res("true"))
			expect(t, existing.call(t, "GET", "/api/roles", fromA), 200, res(`[{"description":null,"role":"admin"}]`))
			// Reading an unknown tenant creates nothing and is not refused.
			expect(t, s.client(newKey(t)).call(t, "GET", "/api/roles", fromA), 200, res("[]"))
		}
	}
	if created != 4 || limited != flood-4 {
		t.Errorf("from one address: %d tenants created, %d refused; want 4 (5 with the first) and %d", created, limited, flood-4)
	}
	// Another address: three more, then the global budget (8) is spent.
	for i := 0; i < 3; i++ {
		expect(t, s.client(newKey(t)).call(t, "POST", "/api/role/admin", fromB), 200, res("true"))
	}
	r := s.client(newKey(t)).call(t, "POST", "/api/role/admin", fromB)
	creationRetry(t, r, "8 per minute", 8) // one every 7.5 s
	// Existing tenants still write.
	expect(t, existing.call(t, "POST", "/api/permission/admin/after", fromB), 200, res("true"))

	if got := tenantCount(t, s); got != 8 {
		t.Errorf("%d tenants in the database, want 8", got)
	}
	if got := s.metricValue(t, `auth_ratelimit_rejections_total{route_class="tenant_creation"}`); got != float64(flood-4) {
		t.Errorf("tenant_creation rejections = %v, want %d", got, flood-4)
	}
	if got := s.metricValue(t, `auth_ratelimit_rejections_total{route_class="tenant_creation_global"}`); got != 1 {
		t.Errorf("tenant_creation_global rejections = %v, want 1", got)
	}
}

// creationRetry checks a refused tenant creation under limit: 429 with the
// limit's message and a wait of 1 to most seconds (how much less than most
// depends on how long the test took since the budget's first creation).
// It returns the wait.
func creationRetry(t *testing.T, r response, limit string, most int) int {
	t.Helper()
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > most {
		t.Fatalf("Retry-After = %q, want 1 to %d", r.header.Get("Retry-After"), most)
	}
	expectError(t, r, 429, fmt.Sprintf("Tenant creation limit exceeded (%s): this request would create a new tenant. Retry after %d seconds.", limit, retry))
	return retry
}

// vmRSS is the resident memory of a process, from /proc.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc to measure memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// A flood of new tenants (here without a creation limit, as many clients
// behind many addresses would make it) holds no more memory than the
// budget: the estimate stays within it, the tenants held are bounded, and
// the process's resident memory grows by less than twice the budget (the
// garbage collector's headroom) plus a fixed allowance. Unbounded, the
// same flood held about 14 KB per tenant.
func TestTenantFloodMemoryBounded(t *testing.T) {
	const budget = 4 << 20
	s := rateServer(t, "AUTH_TENANT_MEMORY_BUDGET=4MiB", "AUTH_AUDIT_DECISIONS=none")
	pid := s.proc.Pid()
	warm := s.client(newKey(t))
	for i := 0; i < 20; i++ {
		expect(t, warm.post(t, "/api/role/r"+strconv.Itoa(i)), 200, res("true"))
	}
	before := vmRSS(t, pid)

	const (
		total   = 4000
		workers = 8
		maxTime = 60 * time.Second
	)
	deadline := time.Now().Add(maxTime)
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	var firstErr sync.Once
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent.Add(1) <= total && time.Now().Before(deadline) {
				r, err := s.send("POST", "/api/role/admin", "Authorization: Bearer "+newKey(t))
				if err != nil || r.status != 200 {
					failed.Add(1)
					firstErr.Do(func() { t.Errorf("creating request: %v %v", r, err) })
				}
			}
		}()
	}
	wg.Wait()
	after := vmRSS(t, pid)
	n := min(sent.Load()-int64(workers), total)
	if n < total/2 {
		t.Fatalf("only %d creations within %v", n, maxTime)
	}
	bytes := s.metricValue(t, "auth_tenants_loaded_bytes")
	loaded := s.metricValue(t, "auth_tenants_loaded")
	evicted := s.metricValue(t, `auth_tenant_evictions_total{reason="memory"}`)
	const perTenant = policy.TenantBaseBytes + policy.RuleBytes // the estimate of a tenant with one role
	if bytes <= 0 || bytes > budget {
		t.Errorf("auth_tenants_loaded_bytes = %v, want within the budget %d", bytes, budget)
	}
	if loaded > budget/perTenant+1 {
		t.Errorf("auth_tenants_loaded = %v, want at most %d", loaded, budget/perTenant+1)
	}
	if evicted < float64(n)-budget/perTenant {
		t.Errorf("auth_tenant_evictions_total{reason=memory} = %v after %d new tenants", evicted, n)
	}
	const allowance = 24 << 20
	grown := after - before
	t.Logf("%d new tenants: RSS %.1f MiB -> %.1f MiB (+%.1f MiB, %.0f bytes per tenant); %v held, %.0f KiB estimated, %v evicted",
		n, float64(before)/(1<<20), float64(after)/(1<<20), float64(grown)/(1<<20), float64(grown)/float64(n), loaded, bytes/1024, evicted)
	if grown > 2*budget+allowance {
		t.Errorf("RSS grew by %.1f MiB over %d new tenants, want under %.1f MiB (twice the %d MiB budget + %d MiB)",
			float64(grown)/(1<<20), n, float64(2*budget+allowance)/(1<<20), budget>>20, allowance>>20)
	}
}

// With Redis, replicas share an address's tenant-creation budget, as they
// share the other limits.
func TestTenantCreationLimitSharedAcrossReplicas(t *testing.T) {
	url := testenv.RedisURL(t)
	var servers []*server
	for i := 0; i < 2; i++ {
		servers = append(servers, rateServer(t, "RATELIMIT_STORAGE_URL="+url, "AUTH_TRUSTED_PROXIES=127.0.0.1",
			"AUTH_TENANT_CREATION_LIMIT=3 per minute"))
	}
	// An address of this run alone: the budget lives in Redis.
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	from := fmt.Sprintf("X-Forwarded-For: 10.%d.%d.%d", b[0], b[1], b[2])
	for i, tc := range []struct {
		server int
		status int
	}{{0, 200}, {0, 200}, {1, 200}, {1, 429}, {0, 429}} {
		r := servers[tc.server].client(newKey(t)).call(t, "POST", "/api/role/admin", from)
		if r.status != tc.status {
			t.Errorf("creation %d on replica %d: %v, want %d", i, tc.server, r, tc.status)
		}
	}
}
