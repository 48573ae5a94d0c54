package policy

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A tenant's revision is its policy version: every committed change of the
// tenant takes the next one, on whichever replica it is made. A tenant that
// does not exist is at revision 0.

// ConsistencyMode says how current a read must be.
type ConsistencyMode int

// The consistency modes of a read.
const (
	// MinimizeLatency answers from the state the replica has (the default).
	MinimizeLatency ConsistencyMode = iota
	// AtLeast answers from a state at or after Consistency.Revision.
	AtLeast
	// Full answers from a state at or after the database's current
	// revision of the tenant.
	Full
)

// Consistency is a read's demand on the state it is answered from.
type Consistency struct {
	Mode ConsistencyMode
	// Revision is the revision an AtLeast read needs.
	Revision int64
}

// String gives the consistency in the form ParseConsistency reads.
func (c Consistency) String() string {
	switch c.Mode {
	case AtLeast:
		return "at_least:" + strconv.FormatInt(c.Revision, 10)
	case Full:
		return "full"
	}
	return "minimize_latency"
}

// ParseConsistency reads "minimize_latency" (or ""), "at_least:<revision>"
// or "full".
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "", "minimize_latency":
		return Consistency{}, nil
	case "full":
		return Consistency{Mode: Full}, nil
	}
	if v, ok := strings.CutPrefix(s, "at_least:"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && n >= 0 && strconv.FormatInt(n, 10) == v {
			return Consistency{Mode: AtLeast, Revision: n}, nil
		}
	}
	return Consistency{}, fmt.Errorf("policy: consistency %q is not minimize_latency, at_least:<revision> or full", s)
}

// ErrConsistencyUnavailable is matched by the error of a read that needed a
// newer state than the replica holds and could not read it from the
// database in time. It also matches ErrUnavailable.
var ErrConsistencyUnavailable = fmt.Errorf("%w: the replica is behind the revision asked for and the database could not be read in time", ErrUnavailable)

// RevisionAheadError refuses a read at a revision the tenant has not reached
// in the database: not a revision this service returned for this tenant.
type RevisionAheadError struct {
	Revision, Latest int64
}

func (e *RevisionAheadError) Error() string {
	return fmt.Sprintf("policy: revision %d is ahead of the tenant's latest revision %d", e.Revision, e.Latest)
}

// Receipt carries a request's consistency demand to the core and, back
// from it, the revision the request read or wrote. One request, one
// receipt; it is not safe for concurrent use.
type Receipt struct {
	// Need is the read's demand (the zero value: MinimizeLatency).
	Need Consistency
	// Revision is the revision the last read was answered at, or the
	// newest revision the request's writes committed (0: none yet).
	Revision int64
	// Wrote says that a write committed.
	Wrote bool
}

type receiptKey struct{}

// WithReceipt returns a context that carries r to the core: reads under it
// honour r.Need and note their revision in r, writes note theirs.
func WithReceipt(ctx context.Context, r *Receipt) context.Context {
	return context.WithValue(ctx, receiptKey{}, r)
}

// ReceiptFrom returns the receipt ctx carries, or nil.
func ReceiptFrom(ctx context.Context) *Receipt {
	r, _ := ctx.Value(receiptKey{}).(*Receipt)
	return r
}

// metBy reports whether a state at revision v meets the receipt's demand
// without asking the database (no receipt: any state does; full always
// asks).
func (r *Receipt) metBy(v int64) bool {
	if r == nil {
		return true
	}
	switch r.Need.Mode {
	case MinimizeLatency:
		return true
	case AtLeast:
		return v >= r.Need.Revision
	}
	return false
}

// noteWrite records a committed revision in the request's receipt.
func noteWrite(ctx context.Context, v int64) {
	if r := ReceiptFrom(ctx); r != nil {
		r.Revision = max(r.Revision, v)
		r.Wrote = true
	}
}

// settle makes the tenant of key, in memory, at least as new as need asks:
// it waits up to Options.ConsistencyWait for the other replicas' message,
// then reloads the tenant from the database. It never lets a read answer
// from an older state: it fails with ErrConsistencyUnavailable when the
// database cannot be read in time, and with *RevisionAheadError when the
// database itself is not at the revision asked for.
func (s *Service) settle(ctx context.Context, key KeyHash, need Consistency) error {
	want := need.Revision
	if need.Mode == Full {
		ctx, cancel := s.bound(ctx)
		_, rev, _, err := s.store.Revision(ctx, key)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConsistencyUnavailable, err)
		}
		want = rev
	}
	t, err := s.tenant(ctx, key, false)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConsistencyUnavailable, err)
	}
	if t == nil {
		// The database has no such tenant: it is at revision 0.
		if want > 0 {
			return &RevisionAheadError{Revision: want}
		}
		return nil
	}
	if t.revisionAtLeast(want) {
		return nil
	}
	if need.Mode == AtLeast && s.opts.ConsistencyWait > 0 {
		// The other replica's message is usually on its way.
		wait := time.NewTimer(s.opts.ConsistencyWait)
		defer wait.Stop()
	waiting:
		for {
			current, next := t.awaitRevision(want)
			if current {
				return nil
			}
			select {
			case <-next:
			case <-wait.C:
				break waiting
			case <-ctx.Done():
				return fmt.Errorf("%w: %w", ErrConsistencyUnavailable, ctx.Err())
			}
		}
	}
	lctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.reloadIf(lctx, t, func(t *tenant) bool { return t.loaded && t.version < want }); err != nil {
		return fmt.Errorf("%w: %w", ErrConsistencyUnavailable, err)
	}
	t.mu.RLock()
	latest, loaded := t.version, t.loaded
	t.mu.RUnlock()
	switch {
	case loaded && latest >= want:
		return nil
	case !loaded:
		return ErrConsistencyUnavailable
	}
	return &RevisionAheadError{Revision: want, Latest: latest}
}

// revisionAtLeast reports whether the loaded state is at revision v or
// after it.
func (t *tenant) revisionAtLeast(v int64) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.loaded && t.version >= v
}

// awaitRevision reports whether the loaded state is at revision v or after
// it and, when it is not, returns a channel closed at the tenant's next
// change of revision (see revised): both under one lock, so that no change
// falls in between.
func (t *tenant) awaitRevision(v int64) (bool, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.loaded && t.version >= v {
		return true, nil
	}
	if t.next == nil {
		t.next = make(chan struct{})
	}
	return false, t.next
}

// revised wakes the readers waiting for the tenant's next revision. The
// caller holds t.mu.
func (t *tenant) revised() {
	if t.next != nil {
		close(t.next)
		t.next = nil
	}
}
