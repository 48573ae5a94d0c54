// Package decision answers the policy core's checks and listings and
// records every answer in the audit trail, whoever asked: the HTTP API, a
// scheduled workflow run, a batch check or any other caller of the core.
//
// A record describes the question (action, user, resource) and the answer
// (details "allowed" for a check); the request facts (request id, client
// address, user agent) come from the context (see audit.WithRequest). A
// question the core refuses (an invalid name, an unavailable store) is not
// recorded here: the caller knows how it failed (the HTTP layer records
// failed requests).
package decision

import (
	"context"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// Sink is where decision records go: the audit trail, which keeps them
// according to its decision mode (all, denied or none).
type Sink interface {
	RecordDecision(ctx context.Context, e audit.Entry, allowed bool)
}

// Question is what a record says was asked: its action, the user it is
// about ("" for none) and the resource.
type Question struct {
	Action   audit.Action
	User     string
	Resource string
}

// answeredStatus is the status_code of every answered check and listing:
// the trail has always described an answer as the API's 200.
const answeredStatus = 200

// Log records answered checks and listings, one audit entry each.
type Log struct {
	sink Sink
	now  func() time.Time
}

// NewLog returns a Log writing to sink (nil: it records nothing).
func NewLog(sink Sink) *Log { return &Log{sink: sink, now: time.Now} }

// Checked records the decision of a check.
func (l *Log) Checked(ctx context.Context, key policy.KeyHash, q Question, allowed bool) {
	l.record(ctx, key, q, map[string]any{"status_code": answeredStatus, "allowed": allowed}, allowed)
}

// Listed records an answered listing (listings count as allowed).
func (l *Log) Listed(ctx context.Context, key policy.KeyHash, q Question) {
	l.record(ctx, key, q, map[string]any{"status_code": answeredStatus}, true)
}

func (l *Log) record(ctx context.Context, key policy.KeyHash, q Question, details map[string]any, allowed bool) {
	if l == nil || l.sink == nil {
		return
	}
	e := audit.Entry{
		Time: l.now().UTC(), Tenant: string(key), User: q.User, Action: q.Action,
		Resource: q.Resource, Success: true, Details: details,
	}
	// The answer is given: its record is not lost because the caller
	// stopped waiting (the trail's queue bounds how long it may block).
	l.sink.RecordDecision(context.WithoutCancel(ctx), e, allowed)
}
