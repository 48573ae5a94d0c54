package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// auditEntry is a record of the trail as the API returns it.
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
}

// auditFilters are the filters of the audit page that the API reads.
var auditFilters = []string{"action", "user", "since", "until", "cursor"}

// auditPage reads the trail through the API (GET /api/audit), so that the
// read is recorded as any read of the trail is; ?verify=1 verifies the
// tenant's chain first.
func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	params := url.Values{"limit": {"50"}}
	filters := map[string]string{}
	for _, f := range auditFilters {
		v := strings.TrimSpace(q.Get(f))
		filters[f] = v
		if v == "" {
			continue
		}
		if f == "since" || f == "until" {
			// The form's datetime-local has no zone: it is UTC.
			if t, err := time.Parse("2006-01-02T15:04", v); err == nil {
				v = t.UTC().Format(time.RFC3339)
			}
		}
		params.Set(f, v)
	}
	data := map[string]any{"Filters": filters, "Actions": audit.Actions}
	if q.Get("verify") != "" && c.deps.Chain != nil {
		c.chains.verify(r, s.Tenant, c.deps.Chain)
	}
	if st, ok := c.chains.get(s.Tenant); ok {
		data["Chain"] = st
	}
	data["CanVerify"] = c.deps.Chain != nil
	a, err := c.call(r, s, http.MethodGet, "/api/audit", params, nil)
	if err != nil {
		_, data["Error"] = errorStatus(err)
	} else {
		var page struct {
			Entries    []auditEntry `json:"entries"`
			NextCursor *string      `json:"next_cursor"`
		}
		if err := json.Unmarshal(a.Data, &page); err != nil {
			c.failErr(w, r, s, err)
			return
		}
		data["Entries"] = page.Entries
		if page.NextCursor != nil {
			next := url.Values{}
			for _, f := range auditFilters[:4] {
				if v := filters[f]; v != "" {
					next.Set(f, v)
				}
			}
			next.Set("cursor", *page.NextCursor)
			data["Next"] = "?" + next.Encode()
		}
	}
	c.renderView(w, r, http.StatusOK, "audit", view{Title: "Audit trail", Page: "audit", Session: s, Data: data}, "")
}

// chainStatus is the outcome of a verification of a tenant's chain.
type chainStatus struct {
	Status  string // intact, broken or unknown
	Records int64
	Detail  string
	At      time.Time
}

// chainCache keeps the last verification of each tenant's chain, for the
// audit page to show without verifying the whole chain on every view.
type chainCache struct {
	mu   sync.Mutex
	last map[policy.KeyHash]chainStatus
}

func newChainCache() *chainCache { return &chainCache{last: map[policy.KeyHash]chainStatus{}} }

// maxChainCache bounds the tenants whose status is kept.
const maxChainCache = 10000

func (cc *chainCache) get(t policy.KeyHash) (chainStatus, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	st, ok := cc.last[t]
	return st, ok
}

// verify verifies t's chain now and keeps the outcome.
func (cc *chainCache) verify(r *http.Request, t policy.KeyHash, v ChainVerifier) {
	n, err := v.VerifyChain(r.Context(), t)
	st := chainStatus{Status: "intact", Records: n, At: time.Now()}
	var p *audit.Problem
	switch {
	case errors.As(err, &p):
		st.Status, st.Detail = "broken", p.Error()
	case err != nil:
		st.Status, st.Detail = "unknown", "The chain could not be read: "+err.Error()
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if len(cc.last) >= maxChainCache {
		clear(cc.last)
	}
	cc.last[t] = st
}

// workflowItem is a workflow as the API lists it, with its last runs.
type workflowItem struct {
	Name       string  `json:"name"`
	Permission string  `json:"permission"`
	Schedule   string  `json:"schedule"`
	Enabled    bool    `json:"enabled"`
	NextRunAt  *string `json:"next_run_at"`
	Runs       []workflowRun
}

// workflowRun is a run of a workflow as the API lists it.
type workflowRun struct {
	ID          string   `json:"id"`
	Trigger     string   `json:"trigger"`
	Outcome     string   `json:"outcome"`
	StartedAt   string   `json:"started_at"`
	Count       int      `json:"count"`
	Added       []string `json:"added"`
	Removed     []string `json:"removed"`
	Error       *string  `json:"error"`
	ScheduledAt string   `json:"scheduled_at"`
}

// lastRuns is how many runs of each workflow the page shows, and
// workflowPage how many workflows a page shows.
const (
	lastRuns     = 3
	workflowPage = 10
)

// workflowsPage lists the tenant's workflows and their last runs through
// the API (GET /api/v2/workflows and …/runs).
func (c *Console) workflowsPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	// Each workflow costs a read of its last runs (whose user lists may be
	// long): a page holds few.
	params := url.Values{"limit": {strconv.Itoa(workflowPage)}}
	if cur := q.Get("cursor"); cur != "" {
		params.Set("cursor", cur)
	}
	data := map[string]any{}
	a, err := c.call(r, s, http.MethodGet, "/api/v2/workflows", params, nil)
	if err != nil {
		_, data["Error"] = errorStatus(err)
		c.renderView(w, r, http.StatusOK, "workflows", view{Title: "Workflows", Session: s, Data: data}, "")
		return
	}
	var page struct {
		Items      []workflowItem `json:"items"`
		NextCursor *string        `json:"next_cursor"`
	}
	if err := json.Unmarshal(a.Data, &page); err != nil {
		c.failErr(w, r, s, err)
		return
	}
	for i := range page.Items {
		ra, err := c.call(r, s, http.MethodGet, "/api/v2/workflows/"+url.PathEscape(page.Items[i].Name)+"/runs",
			url.Values{"limit": {strconv.Itoa(lastRuns)}}, nil)
		if err != nil {
			continue
		}
		var runs struct {
			Items []workflowRun `json:"items"`
		}
		if json.Unmarshal(ra.Data, &runs) == nil {
			page.Items[i].Runs = runs.Items
		}
	}
	data["Items"] = page.Items
	if page.NextCursor != nil {
		data["Next"] = "?" + url.Values{"cursor": {*page.NextCursor}}.Encode()
	}
	c.renderView(w, r, http.StatusOK, "workflows", view{Title: "Workflows", Session: s, Data: data}, "")
}

// runWorkflow runs a workflow now through the API (POST
// /api/v2/workflows/{workflow}/run).
func (c *Console) runWorkflow(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("workflow")
	a, err := c.call(r, s, http.MethodPost, "/api/v2/workflows/"+url.PathEscape(name)+"/run", nil, nil)
	c.done(w, r, s, a, err, Prefix+"/workflows")
}
