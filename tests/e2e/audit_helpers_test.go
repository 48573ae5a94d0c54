package e2e

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// auditEntry is one entry of GET /api/audit.
type auditEntry struct {
	Action    string         `json:"action"`
	Details   map[string]any `json:"details"`
	IPAddress string         `json:"ip_address"`
	RequestID string         `json:"request_id"`
	Resource  string         `json:"resource"`
	Seq       int64          `json:"seq"`
	Success   bool           `json:"success"`
	Timestamp string         `json:"timestamp"`
	User      *string        `json:"user"`
	UserAgent string         `json:"user_agent"`
}

// auditPage is the body of GET /api/audit.
type auditPage struct {
	Code int `json:"code"`
	Data struct {
		Entries    []auditEntry `json:"entries"`
		Limit      int          `json:"limit"`
		NextCursor *string      `json:"next_cursor"`
	} `json:"data"`
	Message string `json:"message"`
	Success bool   `json:"success"`
}

// auditKeys is the keyring of the test servers' audit key: the tests use it
// to compute the fingerprints they expect.
var auditKeys = func() *audit.Keyring {
	k, err := audit.NewKeyring([]byte(testAuditKey))
	if err != nil {
		panic(err)
	}
	return k
}()

// tenantFP is the fingerprint that stands for a client key in the trail.
func tenantFP(t testing.TB, key string) string {
	t.Helper()
	kh, err := policy.ParseClientKey(key)
	if err != nil {
		t.Fatalf("client key %q: %v", key, err)
	}
	return auditKeys.TenantFingerprint(string(kh))
}

// keyHash is the stored hash of a client key.
func keyHash(t testing.TB, key string) string {
	t.Helper()
	kh, err := policy.ParseClientKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(kh)
}

// userFP is the fingerprint of a user of a tenant.
func userFP(t testing.TB, key, user string) string {
	t.Helper()
	return auditKeys.UserFingerprint(tenantFP(t, key), user)
}

var (
	fingerprintRE = regexp.MustCompile(`^u_[0-9a-f]{32}$`)
	recordTimeRE  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)
)

// auditPage reads one page of the tenant's trail; query is the raw query
// string (without "?").
func (c client) auditPage(t testing.TB, query string) (auditPage, response) {
	t.Helper()
	path := "/api/audit"
	if query != "" {
		path += "?" + query
	}
	r := c.get(t, path)
	var p auditPage
	decode(t, r, &p)
	if p.Code != 200 || !p.Success {
		t.Fatalf("GET %s: envelope %+v", path, p)
	}
	return p, r
}

// auditAll walks every page of the tenant's trail for query (newest first)
// with the cursor, and checks that the walk is consistent.
func (c client) auditAll(t testing.TB, query string) []auditEntry {
	t.Helper()
	var out []auditEntry
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("GET /api/audit?%s: the cursor does not end", query)
		}
		q := url.Values{}
		if query != "" {
			var err error
			if q, err = url.ParseQuery(query); err != nil {
				t.Fatal(err)
			}
		}
		if q.Get("limit") == "" {
			q.Set("limit", "500")
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		p, _ := c.auditPage(t, q.Encode())
		for _, e := range p.Data.Entries {
			if len(out) > 0 && e.Seq >= out[len(out)-1].Seq {
				t.Fatalf("GET /api/audit?%s: seq %d after %d, want strictly decreasing", q.Encode(), e.Seq, out[len(out)-1].Seq)
			}
			out = append(out, e)
		}
		if p.Data.NextCursor == nil {
			return out
		}
		cursor = *p.Data.NextCursor
	}
}

// pollDeadline bounds every wait for an asynchronous record.
const pollDeadline = 20 * time.Second

// waitAudit polls the tenant's trail for query until done accepts what it
// holds, and returns that.
func (c client) waitAudit(t testing.TB, query, what string, done func([]auditEntry) bool) []auditEntry {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for {
		got := c.auditAll(t, query)
		if done(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s in GET /api/audit?%s; have %d entries:\n%s", pollDeadline, what, query, len(got), dumpEntries(got))
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// byRequestID indexes entries by request id.
func byRequestID(es []auditEntry) map[string][]auditEntry {
	out := map[string][]auditEntry{}
	for _, e := range es {
		out[e.RequestID] = append(out[e.RequestID], e)
	}
	return out
}

func dumpEntries(es []auditEntry) string {
	var b strings.Builder
	for i, e := range es {
		if i == 40 {
			fmt.Fprintf(&b, "  … %d more\n", len(es)-i)
			break
		}
		u := "-"
		if e.User != nil {
			u = *e.User
		}
		fmt.Fprintf(&b, "  seq %d %s %s user=%s success=%v details=%v req=%s\n", e.Seq, e.Action, e.Resource, u, e.Success, e.Details, e.RequestID)
	}
	return b.String()
}

// verifyAudit runs `auth-server audit verify [args]` with the server's
// environment and returns its exit code and combined output.
func verifyAudit(t testing.TB, env []string, args ...string) (int, string) {
	t.Helper()
	code, stdout, stderr := runBinary(t, env, 60*time.Second, append([]string{"audit", "verify"}, args...)...)
	return code, stdout + stderr
}

// mustVerify checks that the audit trail verifies.
func mustVerify(t testing.TB, env []string, args ...string) string {
	t.Helper()
	code, out := verifyAudit(t, env, args...)
	if code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify %v: exit %d, want 0:\n%s", args, code, out)
	}
	return out
}

// dbRecord is one row of audit_log.
type dbRecord struct {
	ID       int64
	Tenant   string
	Seq      int64
	Action   string
	Resource string
	Success  bool
	Details  string
}

// auditRows reads audit_log (all tenants, or one) in id order.
func auditRows(t testing.TB, db *sql.DB, tenant string) []dbRecord {
	t.Helper()
	q := `SELECT id, tenant_fp, seq, action, resource, success, details FROM audit_log`
	var args []any
	if tenant != "" {
		q += ` WHERE tenant_fp = $1`
		args = append(args, tenant)
	}
	rows, err := db.Query(q+` ORDER BY id`, args...)
	if err != nil {
		t.Fatalf("read audit_log: %v", err)
	}
	defer rows.Close()
	var out []dbRecord
	for rows.Next() {
		var r dbRecord
		if err := rows.Scan(&r.ID, &r.Tenant, &r.Seq, &r.Action, &r.Resource, &r.Success, &r.Details); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkGapless checks that a tenant's records are numbered 1..n in id order
// and that its chain head is at n.
func checkGapless(t testing.TB, db *sql.DB, tenant string) []dbRecord {
	t.Helper()
	recs := auditRows(t, db, tenant)
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("tenant %s: record %d (id %d) has seq %d, want %d: the chain has a gap or a fork", tenant, i, r.ID, r.Seq, i+1)
		}
	}
	var head int64
	if err := db.QueryRow(`SELECT seq FROM audit_heads WHERE tenant_fp = $1`, tenant).Scan(&head); err != nil {
		t.Fatalf("chain head of %s: %v", tenant, err)
	}
	if head != int64(len(recs)) {
		t.Errorf("tenant %s: head at seq %d, %d records", tenant, head, len(recs))
	}
	return recs
}

// countActions counts a tenant's records by action.
func countActions(recs []dbRecord) map[string]int {
	out := map[string]int{}
	for _, r := range recs {
		out[r.Action]++
	}
	return out
}

// metricValue reads one sample of the server's /metrics ("name" or
// `name{label="v"}`); absent is 0.
func (s *server) metricValue(t testing.TB, sample string) float64 {
	t.Helper()
	r := s.do(t, "GET", "/metrics")
	if r.status != 200 {
		t.Fatalf("GET /metrics: %d", r.status)
	}
	for _, line := range strings.Split(string(r.body), "\n") {
		if name, val, ok := strings.Cut(line, " "); ok && name == sample {
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// hasMetric reports whether /metrics exposes a metric family.
func (s *server) hasMetric(t testing.TB, name string) bool {
	t.Helper()
	r := s.do(t, "GET", "/metrics")
	return strings.Contains(string(r.body), "# TYPE "+name+" ")
}

// withoutEnv returns env without the given variables.
func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// fileMode returns the permission bits of a file.
func fileMode(t testing.TB, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return fi.Mode().Perm()
}
