package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/policy"
)

// Tenant creations count against the client IP's budget and against the
// service's: an IP over its own budget is refused while others still
// create, until the global budget is spent too.
func TestTenantAdmission(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	lim, err := ratelimit.New(ratelimit.Options{
		Limits: map[string][]ratelimit.Limit{
			ratelimit.Default:              {{Count: 1, Period: time.Hour}},
			ratelimit.TenantCreation:       {{Count: 2, Period: time.Minute}},
			ratelimit.TenantCreationGlobal: {{Count: 6, Period: time.Minute}},
		},
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	admit := TenantAdmission(lim)
	from := func(ip string) context.Context {
		return audit.WithRequest(context.Background(), audit.Request{ID: "r", IP: ip})
	}
	for i, tc := range []struct {
		ip      string
		allowed bool
		limit   string // of the refusal
		retry   int
	}{
		{"192.0.2.1", true, "", 0},
		{"192.0.2.1", true, "", 0},
		{"192.0.2.1", false, "2 per minute", 30}, // its own budget
		{"2001:db8::1", true, "", 0},
		{"2001:db8::2", true, "", 0},
		{"2001:db8::3", false, "2 per minute", 30}, // the same /64: the same budget
		{"198.51.100.7", true, "", 0},
		{"198.51.100.8", true, "", 0},              // the sixth creation in all
		{"203.0.113.9", false, "6 per minute", 10}, // the global budget is spent
	} {
		err := admit(from(tc.ip))
		var rl *rateLimitedError
		switch {
		case tc.allowed && err != nil:
			t.Errorf("creation %d from %s refused: %v", i, tc.ip, err)
		case !tc.allowed && !errors.As(err, &rl):
			t.Errorf("creation %d from %s: err = %v, want a rate-limit refusal", i, tc.ip, err)
		case !tc.allowed:
			if got := rl.limit.String(); got != tc.limit || rl.retryAfter != tc.retry || !rl.creation {
				t.Errorf("creation %d from %s refused by %q, retry after %ds (creation %v); want %q, %ds",
					i, tc.ip, got, rl.retryAfter, rl.creation, tc.limit, tc.retry)
			}
		}
	}
	if got := lim.Rejections(ratelimit.TenantCreation) + lim.Rejections(ratelimit.TenantCreationGlobal); got != 3 {
		t.Errorf("%d tenant-creation rejections counted, want 3", got)
	}
	if got := lim.Rejections(ratelimit.Writes) + lim.Rejections(ratelimit.Unauthenticated); got != 0 {
		t.Errorf("tenant creations spent other classes' budgets: %d rejections", got)
	}
}

// A refused creation, as the policy core returns it, is a 429 with the
// limit's headers and Retry-After.
func TestTenantAdmissionAnswer(t *testing.T) {
	r := ratelimit.Result{Limit: ratelimit.Limit{Count: 10, Period: time.Minute}, RetryAfter: 5500 * time.Millisecond,
		ResetAfter: time.Minute, Policy: "10;w=60"}
	rl := newRateLimited(r)
	rl.creation = true
	err := fmt.Errorf("%w: %w", policy.ErrTenantCreationRefused, rl)
	code, msg := statusOf(err)
	if code != http.StatusTooManyRequests || !strings.Contains(msg, "Tenant creation limit exceeded (10 per minute)") ||
		!strings.Contains(msg, "Retry after 6 seconds") {
		t.Errorf("statusOf = %d %q, want 429 naming the tenant-creation limit and the wait", code, msg)
	}
	// Without the limiter's details (another admission), still 429.
	if code, _ := statusOf(fmt.Errorf("%w: busy", policy.ErrTenantCreationRefused)); code != http.StatusTooManyRequests {
		t.Errorf("statusOf(ErrTenantCreationRefused) = %d, want 429", code)
	}
}

// eventLog is an Auditor that keeps the events it is given.
type eventLog struct {
	Auditor
	events []audit.Entry
}

func (l *eventLog) RecordEvent(_ context.Context, e audit.Entry) { l.events = append(l.events, e) }

// A write refused because it would create a tenant is not audited (there is
// no tenant to record it for, and a flood of invented keys must not fill the
// trail), while other failed writes are.
func TestTenantCreationRefusalIsNotAudited(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		events int
	}{
		{"creation refused", fmt.Errorf("%w: busy", policy.ErrTenantCreationRefused), http.StatusTooManyRequests, 0},
		{"other failure", errors.New("constraint"), http.StatusInternalServerError, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &eventLog{}
			s := opsServer(t, Config{}, Deps{Policy: &opsPolicy{writeErr: tc.err}, Audit: log})
			if rec := opsDo(s, "POST", "/api/role/admin", "Authorization: Bearer "+opsKey); rec.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if len(log.events) != tc.events {
				t.Errorf("%d audit events, want %d: %+v", len(log.events), tc.events, log.events)
			}
		})
	}
}
