package policy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ourway/auth/audit"
)

// The change feed: every committed change of a tenant is written, in the
// change's own transaction, to the tenant's change log as items in API
// terms (role, permission, user, parent), so that a consumer that follows
// the log from revision 0 rebuilds the tenant's policy exactly. The log is
// read from the database, so it is the same on every replica.

// The operations of change items.
const (
	ChangeCreateRole     = "create_role"
	ChangeDeleteRole     = "delete_role"
	ChangeSetDescription = "set_description"
	ChangeGrant          = "grant"
	ChangeRevoke         = "revoke"
	ChangeAddMember      = "add_member"
	ChangeRemoveMember   = "remove_member"
	ChangeAddParent      = "add_parent"
	ChangeRemoveParent   = "remove_parent"
	ChangeDeleteUser     = "delete_user"
	ChangeExpire         = "expire"
	// ChangeExternal marks revisions made by another program writing the
	// rules table (a Casbin tool): a consumer resynchronises from an export.
	ChangeExternal = "external"
)

// ChangeRecord is one item of a tenant's change log.
type ChangeRecord struct {
	Revision int64
	// Seq orders the items of one revision (from 0).
	Seq int
	Op  string
	// Role, Permission, User and Parent are set as the operation needs
	// them ("" otherwise).
	Role, Permission, User, Parent string
	// Description is the new description of set_description (nil: none).
	Description *string
	// ExpiresAt is the end of a time-bound grant or membership.
	ExpiresAt *time.Time
	At        time.Time
}

// Position is a place in a tenant's change log: after the item Seq of
// revision Revision (Seq -1: after the whole revision).
type Position struct {
	Revision int64
	Seq      int
}

// After returns the position after every item of revision r.
func After(r int64) Position { return Position{Revision: r, Seq: -1} }

// changeItems turns the memory operations of a committed change of the
// domain dom into change items (revision and time are the writer's).
func changeItems(dom string, ops []Op) []ChangeRecord {
	var out []ChangeRecord
	add := func(r ChangeRecord) {
		r.Seq = len(out)
		out = append(out, r)
	}
	for _, op := range ops {
		switch op.Kind {
		case OpAddRole:
			add(ChangeRecord{Op: ChangeCreateRole, Role: op.Role})
		case OpRemoveRole:
			add(ChangeRecord{Op: ChangeDeleteRole, Role: op.Role})
		case OpSetDescription:
			add(ChangeRecord{Op: ChangeSetDescription, Role: op.Role, Description: op.Description})
		case OpAddRules, OpRemoveRules, OpExpire:
			for _, r := range op.Rules {
				if it, ok := ruleItem(op.Kind, op.Ptype[:1], r, op.ExpiresAt); ok {
					add(it)
				}
			}
		case OpRemoveFiltered:
			// The filtered removals of a role's deletion are stated by its
			// delete_role; a user's removal from every role filters the g
			// rules on the user alone.
			if op.Ptype == "g" && op.FieldIndex == 0 && len(op.Values) >= 2 && op.Values[1] == "" &&
				!isRoleSubject(op.Values[0]) {
				add(ChangeRecord{Op: ChangeDeleteUser, User: op.Values[0]})
			}
		}
	}
	return out
}

// ruleItem states one rule of an operation as a change item.
func ruleItem(kind OpKind, sec string, r []string, at int64) (ChangeRecord, bool) {
	var it ChangeRecord
	// ops names the item of an addition, a removal and an expiry.
	var ops [3]string
	switch {
	case sec == "p" && len(r) >= 3 && isRoleSubject(r[0]):
		it = ChangeRecord{Role: roleName(r[0]), Permission: r[2]}
		ops = [3]string{ChangeGrant, ChangeRevoke, ChangeExpire}
	case sec == "g" && len(r) >= 2 && isRoleSubject(r[1]) && isRoleSubject(r[0]):
		it = ChangeRecord{Role: roleName(r[0]), Parent: roleName(r[1])}
		ops = [3]string{ChangeAddParent, ChangeRemoveParent, ""} // links between roles never end
	case sec == "g" && len(r) >= 2 && isRoleSubject(r[1]):
		it = ChangeRecord{Role: roleName(r[1]), User: r[0]}
		ops = [3]string{ChangeAddMember, ChangeRemoveMember, ChangeExpire}
	default:
		return it, false
	}
	switch kind {
	case OpAddRules:
		it.Op = ops[0]
		if at != 0 && it.Parent == "" {
			e := time.Unix(0, at).UTC()
			it.ExpiresAt = &e
		}
	case OpRemoveRules:
		it.Op = ops[1]
	case OpExpire:
		it.Op = ops[2]
	}
	return it, it.Op != ""
}

// ChangePage is a page of a tenant's change feed.
type ChangePage struct {
	Items []ChangeRecord
	// Next is where the next page starts when more items exist now (nil:
	// the page reached the end of the log).
	Next *Position
	// Revision is the tenant's latest revision when Next is nil, else the
	// revision of the page's last item.
	Revision int64
}

// ChangesExpiredError refuses a feed position older than the retained log.
type ChangesExpiredError struct {
	// Oldest is the oldest revision whose items are still kept.
	Oldest int64
}

func (e *ChangesExpiredError) Error() string {
	return fmt.Sprintf("policy: the change log no longer holds the changes before revision %d", e.Oldest)
}

// MaxChangesWait bounds how long Changes holds a request for a change.
const MaxChangesWait = 60 * time.Second

// Changes reads the tenant's change log after position from, up to limit
// items. When there is nothing after from and wait is positive, it waits
// (at most MaxChangesWait) for a change to commit on any replica. A
// position older than the retained log fails with *ChangesExpiredError.
func (s *Service) Changes(ctx context.Context, key KeyHash, from Position, limit int, wait time.Duration) (ChangePage, error) {
	wait = min(wait, MaxChangesWait)
	deadline := time.Now().Add(wait)
	var (
		id    int64
		found bool
	)
	for {
		if !found {
			// A tenant's id never changes: it is looked up until it exists.
			var err error
			if id, _, found, err = s.readRevision(ctx, key); err != nil {
				return ChangePage{}, err
			}
		}
		// Listen before reading, so that a commit in between is not
		// missed; with no tenant yet, nothing to listen to.
		var woke <-chan struct{}
		if found && wait > 0 {
			woke = s.feed.listen(id)
		}
		page, err := s.readChanges(ctx, id, found, from, limit)
		if err != nil || len(page.Items) > 0 || wait <= 0 || time.Until(deadline) <= 0 {
			return page, err
		}
		// A missed message (Redis down) is made up for by looking again.
		poll := time.NewTimer(min(time.Until(deadline), s.opts.FeedPoll))
		select {
		case <-woke:
		case <-poll.C:
		case <-ctx.Done():
			poll.Stop()
			return page, nil
		}
		poll.Stop()
	}
}

func (s *Service) readRevision(ctx context.Context, key KeyHash) (int64, int64, bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.store.Revision(ctx, key)
}

func (s *Service) readChanges(ctx context.Context, id int64, found bool, from Position, limit int) (ChangePage, error) {
	if !found {
		if from.Revision > 0 {
			return ChangePage{}, &RevisionAheadError{Revision: from.Revision}
		}
		return ChangePage{Items: []ChangeRecord{}}, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	b, err := s.store.ReadChanges(ctx, id, from, limit+1)
	if err != nil {
		return ChangePage{}, err
	}
	// A position inside the newest purged revision (a cursor) has lost the
	// rest of that revision's items as much as an older position has.
	if from.Revision < b.Floor || (from.Revision == b.Floor && from.Seq >= 0 && b.Floor > 0) {
		return ChangePage{}, &ChangesExpiredError{Oldest: b.Floor + 1}
	}
	if from.Revision > b.Latest {
		// Not a position of this tenant's log (another tenant's, or a
		// database restored from an older backup).
		return ChangePage{}, &RevisionAheadError{Revision: from.Revision, Latest: b.Latest}
	}
	page := ChangePage{Items: b.Records, Revision: b.Latest}
	if page.Items == nil {
		page.Items = []ChangeRecord{}
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		last := page.Items[limit-1]
		page.Next = &Position{Revision: last.Revision, Seq: last.Seq}
		page.Revision = last.Revision
	}
	return page, nil
}

// feedHub wakes the requests waiting for a tenant's next change.
type feedHub struct {
	mu      sync.Mutex
	waiting map[int64]chan struct{}
}

// listen returns a channel closed at the tenant's next change.
func (h *feedHub) listen(id int64) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiting == nil {
		h.waiting = map[int64]chan struct{}{}
	}
	ch := h.waiting[id]
	if ch == nil {
		ch = make(chan struct{})
		h.waiting[id] = ch
	}
	return ch
}

// wake wakes the requests waiting for the tenant.
func (h *feedHub) wake(id int64) {
	h.mu.Lock()
	ch := h.waiting[id]
	delete(h.waiting, id)
	h.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// PurgeChanges deletes the change items older than the retention
// (Options.ChangesRetention) and returns how many it deleted.
func (s *Service) PurgeChanges(ctx context.Context) (int64, error) {
	return s.store.PurgeChanges(ctx, s.now().Add(-s.opts.ChangesRetention))
}

// expireBatch bounds the expired rules one sweep pass reads at once.
const expireBatch = 500

// SweepExpired removes from the database the time-bound rules that have
// ended, each as a change of its own (change item "expire", audit action
// EXPIRE_MEMBERSHIP or EXPIRE_PERMISSION), and returns how many it removed.
// Several replicas may sweep at once: a rule is removed once, and a rule
// extended meanwhile is kept.
func (s *Service) SweepExpired(ctx context.Context) (int, error) {
	n := 0
	for {
		due, err := s.store.DueExpiries(ctx, s.now(), expireBatch)
		if err != nil {
			return n, err
		}
		removed := 0
		for _, d := range due {
			ok, err := s.expire(ctx, d)
			if err != nil {
				return n, err
			}
			if ok {
				removed++
			}
		}
		n += removed
		if len(due) < expireBatch || removed == 0 {
			return n, nil
		}
	}
}

// expire removes one ended rule as a change of its tenant.
func (s *Service) expire(ctx context.Context, d DueExpiry) (bool, error) {
	action, resource, user := expireAction(d.Ptype, d.Rule)
	if action == "" {
		return false, nil
	}
	return s.write(ctx, d.Tenant, change{action: action, resource: resource, user: user,
		details: map[string]any{"expired_at": d.At.UTC().Format(time.RFC3339Nano)},
		op: func(ctx context.Context, tx Tx, _ *tenant, dom string) (bool, []Op, error) {
			r := append([]string(nil), d.Rule...)
			r[domainField(d.Ptype)] = dom
			ok, err := tx.ExpireRule(ctx, d.TenantID, d.Ptype, r, s.now())
			if err != nil {
				return false, nil, err
			}
			if !ok {
				return false, nil, errNoChange
			}
			return true, []Op{{Kind: OpExpire, Ptype: d.Ptype, Rules: [][]string{r}}}, nil
		}})
}

// domainField is the index of the domain in a rule of ptype.
func domainField(ptype string) int {
	if ptype == "g" {
		return 2
	}
	return 1
}

// expireAction names the audit record of an expired rule.
func expireAction(ptype string, r []string) (action audit.Action, resource, user string) {
	switch {
	case ptype == "p" && len(r) >= 3 && isRoleSubject(r[0]):
		return audit.ExpirePermission, roleName(r[0]) + ":" + r[2], ""
	case ptype == "g" && len(r) >= 2 && isRoleSubject(r[1]) && !isRoleSubject(r[0]):
		return audit.ExpireMembership, roleName(r[1]), r[0]
	}
	return "", "", ""
}
