// Package auditdb stores the audit trail with gorm: records chained per
// tenant in audit_log, the end of each chain in audit_heads. Records of a
// change are written inside the change's transaction; records of checks
// arrive in batches from the asynchronous queue.
package auditdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/sqldb"
)

// Store is the gorm audit store.
type Store struct {
	db      *sqldb.DB
	keys    *audit.Keyring
	history History
}

var _ audit.Store = (*Store)(nil)

// History reports whether the tenant with this fingerprint has changed
// before (a policy version above 0, or stored rules), reading in the
// transaction carried by ctx. A tenant that has must already have an audit
// chain.
type History func(ctx context.Context, tenantFP string) (bool, error)

// Options tune a Store.
type Options struct {
	// History tells a new tenant (whose first record starts its chain)
	// from one whose chain went missing (whose records are refused with
	// audit.ErrChainMissing). Nil: every missing chain is started afresh,
	// as for a new tenant.
	History History
}

// New returns a Store over an open, migrated database.
func New(db *sqldb.DB, keys *audit.Keyring) *Store { return &Store{db: db, keys: keys} }

// NewWithOptions returns a Store over an open, migrated database, tuned by
// opts.
func NewWithOptions(db *sqldb.DB, keys *audit.Keyring, opts Options) *Store {
	return &Store{db: db, keys: keys, history: opts.History}
}

type recordRow struct {
	ID         int64  `gorm:"column:id;primaryKey"`
	TenantFP   string `gorm:"column:tenant_fp"`
	Seq        int64  `gorm:"column:seq"`
	OccurredAt string `gorm:"column:occurred_at"`
	UserFP     string `gorm:"column:user_fp"`
	Action     string `gorm:"column:action"`
	Resource   string `gorm:"column:resource"`
	Success    bool   `gorm:"column:success"`
	Details    string `gorm:"column:details"`
	IP         string `gorm:"column:ip"`
	UserAgent  string `gorm:"column:user_agent"`
	RequestID  string `gorm:"column:request_id"`
	MAC        string `gorm:"column:mac"`
}

func (recordRow) TableName() string { return "audit_log" }

type headRow struct {
	TenantFP    string `gorm:"column:tenant_fp;primaryKey"`
	Seq         int64  `gorm:"column:seq"`
	MAC         string `gorm:"column:mac"`
	HeadMAC     string `gorm:"column:head_mac"`
	BaseSeq     int64  `gorm:"column:base_seq"`
	BaseMAC     string `gorm:"column:base_mac"`
	BaseHeadMAC string `gorm:"column:base_head_mac"`
}

func (headRow) TableName() string { return "audit_heads" }

func toRecord(r recordRow) audit.Record {
	t, _ := time.Parse("2006-01-02T15:04:05.000000Z", r.OccurredAt)
	return audit.Record{ID: r.ID, Tenant: r.TenantFP, Seq: r.Seq, Time: t, User: r.UserFP,
		Action: audit.Action(r.Action), Resource: r.Resource, Success: r.Success, Details: r.Details,
		IP: r.IP, UserAgent: r.UserAgent, RequestID: r.RequestID, MAC: r.MAC}
}

func toHead(h headRow) audit.Head {
	return audit.Head{Tenant: h.TenantFP, Seq: h.Seq, MAC: h.MAC, HeadMAC: h.HeadMAC,
		BaseSeq: h.BaseSeq, BaseMAC: h.BaseMAC, BaseHeadMAC: h.BaseHeadMAC}
}

// Append seals records into their tenants' chains and inserts them, in the
// transaction carried by ctx if there is one, else in a new one. Records
// are numbered in the order given; tenants are locked in a fixed order so
// that concurrent writers (other replicas included) never fork a chain.
func (s *Store) Append(ctx context.Context, recs []audit.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if tx := sqldb.TxFrom(ctx); tx != nil {
		return s.append(ctx, tx.WithContext(ctx), recs)
	}
	return s.db.InTxContext(ctx, func(ctx context.Context, tx *gorm.DB) error { return s.append(ctx, tx, recs) })
}

func (s *Store) append(ctx context.Context, tx *gorm.DB, recs []audit.Record) error {
	// One tenant is the common case (a change, or a batch of one tenant's
	// checks): no grouping needed.
	var tenants []string
	var byTenant map[string][]int
	if single(recs) {
		tenants = []string{recs[0].Tenant}
	} else {
		byTenant = map[string][]int{}
		for i := range recs {
			t := recs[i].Tenant
			if _, ok := byTenant[t]; !ok {
				tenants = append(tenants, t)
			}
			byTenant[t] = append(byTenant[t], i)
		}
		sort.Strings(tenants)
	}
	w := s.writer(ctx, tx)
	heads := make([]audit.Head, 0, len(tenants))
	sealed := make([]*audit.Record, 0, len(recs))
	for _, t := range tenants {
		idx := byTenant[t]
		head, err := s.lockHead(ctx, w, tx, t, func() error { return s.checkHistory(ctx, t, recs, idx) })
		if err != nil {
			return err
		}
		seal := func(r *audit.Record) {
			r.Seq = head.Seq + 1
			r.Time = r.Time.UTC().Truncate(time.Microsecond)
			s.keys.Seal(head.MAC, r)
			head.Seq, head.MAC = r.Seq, r.MAC
			sealed = append(sealed, r)
		}
		if idx == nil {
			for i := range recs {
				seal(&recs[i])
			}
		} else {
			for _, i := range idx {
				seal(&recs[i])
			}
		}
		head.HeadMAC = s.keys.HeadMAC(t, head.Seq, head.MAC)
		heads = append(heads, head)
	}
	return w.write(ctx, sealed, heads)
}

// single reports whether every record is of the same tenant.
func single(recs []audit.Record) bool {
	for i := 1; i < len(recs); i++ {
		if recs[i].Tenant != recs[0].Tenant {
			return false
		}
	}
	return true
}

// checkHistory refuses to start a chain for a tenant that has none but has
// changed before: its chain was deleted, and starting a new one silently
// would hide that. A record of a change knows the policy version it
// produced (above 1: not the tenant's first change); for the others the
// tenant's stored state is asked. idx lists the tenant's records (nil: all
// of recs).
func (s *Store) checkHistory(ctx context.Context, tenant string, recs []audit.Record, idx []int) error {
	if s.history == nil {
		return nil
	}
	missing := &audit.ChainMissingError{Tenant: tenant}
	ask := false
	version := func(i int) int64 { return recs[i].Version }
	n := len(recs)
	if idx != nil {
		version, n = func(i int) int64 { return recs[idx[i]].Version }, len(idx)
	}
	for i := 0; i < n; i++ {
		if v := version(i); v > 1 {
			return missing
		} else if v == 0 {
			ask = true
		}
	}
	if !ask {
		return nil // the tenant's first change
	}
	changed, err := s.history(ctx, tenant)
	if err != nil {
		return fmt.Errorf("read tenant history: %w", err)
	}
	if changed {
		return missing
	}
	return nil
}

// lockHead returns the tenant's chain head, locked until the transaction
// ends (FOR UPDATE on PostgreSQL; SQLite transactions here are write-locked
// from their start). When there is none, mayStart decides whether a new
// chain may start (a new tenant) before one is created.
func (s *Store) lockHead(ctx context.Context, w *writer, tx *gorm.DB, tenant string, mayStart func() error) (audit.Head, error) {
	h, found, err := w.head(ctx, tenant)
	if err != nil {
		return audit.Head{}, fmt.Errorf("read audit chain: %w", err)
	}
	if found {
		return h, nil
	}
	if err := mayStart(); err != nil {
		return audit.Head{}, err
	}
	genesis := s.keys.Genesis(tenant)
	if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&headRow{
		TenantFP: tenant, Seq: 0, MAC: genesis, HeadMAC: s.keys.HeadMAC(tenant, 0, genesis),
	}).Error; err != nil {
		return audit.Head{}, fmt.Errorf("create audit chain: %w", err)
	}
	h, found, err = w.head(ctx, tenant)
	if err == nil && !found {
		err = errors.New("chain head not found after creating it")
	}
	if err != nil {
		return audit.Head{}, fmt.Errorf("read audit chain: %w", err)
	}
	return h, nil
}

// List implements audit.Store: a tenant's records newest first, and the
// cursor of the next page (0 when there is none).
func (s *Store) List(ctx context.Context, tenantFP, userFP string, q audit.Query) ([]audit.Record, int64, error) {
	db := s.db.Conn(ctx).Model(&recordRow{}).Where("tenant_fp = ?", tenantFP)
	if q.Action != "" {
		db = db.Where("action = ?", string(q.Action))
	}
	if userFP != "" {
		db = db.Where("user_fp = ?", userFP)
	}
	if !q.Since.IsZero() {
		db = db.Where("occurred_at >= ?", audit.FormatTime(q.Since))
	}
	if !q.Until.IsZero() {
		db = db.Where("occurred_at <= ?", audit.FormatTime(q.Until))
	}
	if q.Before > 0 {
		db = db.Where("seq < ?", q.Before)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	var rows []recordRow
	if err := db.Order("seq DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("list audit records: %w", err)
	}
	var next int64
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[len(rows)-1].Seq
	}
	out := make([]audit.Record, len(rows))
	for i, r := range rows {
		out[i] = toRecord(r)
	}
	return out, next, nil
}

// Count returns how many records a tenant has with the given action ("" for
// any).
func (s *Store) Count(ctx context.Context, tenant, action string) (int64, error) {
	db := s.db.Conn(ctx).Model(&recordRow{}).Where("tenant_fp = ?", tenant)
	if action != "" {
		db = db.Where("action = ?", action)
	}
	var n int64
	err := db.Count(&n).Error
	return n, err
}

// Tenants lists the fingerprints of every tenant with a chain head or with
// records: a tenant whose head row was deleted still has its records
// verified (and reported), rather than silently skipped.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	var out []string
	err := s.db.Conn(ctx).Raw(`SELECT tenant_fp FROM audit_heads
		UNION SELECT DISTINCT tenant_fp FROM audit_log ORDER BY tenant_fp`).Scan(&out).Error
	return out, err
}

// Verify walks a tenant's chain from its start (or retention anchor) to its
// head and returns the first problem found, as an *audit.Problem.
//
// The head and the records are read in one read-only snapshot, so that
// verifying a live service (other replicas appending or purging meanwhile)
// sees one consistent chain instead of reporting their work as tampering.
func (s *Store) Verify(ctx context.Context, tenant string) (int64, error) {
	var n int64
	var problem error
	err := s.db.Gorm().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		n, problem = s.verify(tx, tenant)
		if _, ok := problem.(*audit.Problem); ok || problem == nil {
			return nil
		}
		return problem
	}, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return n, err
	}
	return n, problem
}

func (s *Store) verify(tx *gorm.DB, tenant string) (int64, error) {
	var h headRow
	err := tx.Where("tenant_fp = ?", tenant).Take(&h).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, &audit.Problem{Tenant: tenant, Reason: "no audit chain for this tenant (missing chain head)"}
	}
	if err != nil {
		return 0, err
	}
	v, err := s.keys.NewVerifier(toHead(h))
	if err != nil {
		return 0, err
	}
	var n int64
	const page = 1000
	var lastID int64
	for {
		var rows []recordRow
		// Walk in insertion (id) order: a reordered or renumbered record
		// then shows up as a sequence or MAC break.
		if err := tx.Where("tenant_fp = ? AND id > ?", tenant, lastID).
			Order("id").Limit(page).Find(&rows).Error; err != nil {
			return n, err
		}
		for _, r := range rows {
			rec := toRecord(r)
			if err := v.Next(&rec); err != nil {
				return n, err
			}
			n++
			lastID = r.ID
		}
		if len(rows) < page {
			break
		}
	}
	return n, v.Finish()
}

// Purge deletes a tenant's records older than cutoff and moves the chain's
// retention anchor to the last deleted record, so the rest still verifies.
//
// The records about to go are verified first: a chain that does not
// verify up to the cutoff is left as it is, as evidence, rather than
// re-anchored past the damage (which would seal it as intact). Nor are
// records whose head is missing purged, and no head is made up for them.
// Other tenants are purged all the same; the errors are returned together.
func (s *Store) Purge(ctx context.Context, cutoff time.Time) (int64, error) {
	var tenants []string
	if err := s.db.Conn(ctx).Model(&headRow{}).Order("tenant_fp").Pluck("tenant_fp", &tenants).Error; err != nil {
		return 0, err
	}
	var total int64
	var errs []error
	for _, t := range tenants {
		err := s.db.InTx(ctx, func(tx *gorm.DB) error {
			q := tx.Where("tenant_fp = ?", t)
			if s.db.Dialect() == sqldb.Postgres {
				q = q.Clauses(clause.Locking{Strength: "UPDATE"})
			}
			var h headRow
			if err := q.Take(&h).Error; err != nil {
				if errors.Is(err, gorm.ErrRecordNotFound) {
					return nil // removed meanwhile: nothing to anchor
				}
				return err
			}
			var last recordRow
			err := tx.Where("tenant_fp = ? AND occurred_at < ?", t, audit.FormatTime(cutoff)).
				Order("seq DESC").Limit(1).Take(&last).Error
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := s.verifyPrefix(tx, h, last); err != nil {
				return fmt.Errorf("not purged, the chain does not verify: %w", err)
			}
			res := tx.Where("tenant_fp = ? AND seq <= ?", t, last.Seq).Delete(&recordRow{})
			if res.Error != nil {
				return res.Error
			}
			total += res.RowsAffected
			return tx.Model(&headRow{}).Where("tenant_fp = ?", t).Updates(map[string]any{
				"base_seq": last.Seq, "base_mac": last.MAC,
				"base_head_mac": s.keys.AnchorMAC(t, last.Seq, last.MAC),
			}).Error
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("purge audit records of %s: %w", t, err))
		}
	}
	return total, errors.Join(errs...)
}

// verifyPrefix checks a chain from its start (or anchor) up to and
// including last, walking in insertion order like Verify.
func (s *Store) verifyPrefix(tx *gorm.DB, h headRow, last recordRow) error {
	v, err := s.keys.NewVerifier(toHead(h))
	if err != nil {
		return err
	}
	const page = 1000
	var lastID int64
	var end audit.Record
	for {
		var rows []recordRow
		if err := tx.Where("tenant_fp = ? AND seq <= ? AND id > ?", h.TenantFP, last.Seq, lastID).
			Order("id").Limit(page).Find(&rows).Error; err != nil {
			return err
		}
		for _, r := range rows {
			rec := toRecord(r)
			if err := v.Next(&rec); err != nil {
				return err
			}
			lastID, end = r.ID, rec
		}
		if len(rows) < page {
			break
		}
	}
	if end.Seq != last.Seq || end.MAC != last.MAC {
		return &audit.Problem{Tenant: h.TenantFP, Seq: last.Seq, ID: last.ID, Reason: "the records before it do not lead to it"}
	}
	return nil
}

// ErrChainExists is returned by Reset for a tenant that has a chain head:
// reset only starts a chain that is missing.
var ErrChainExists = errors.New("auditdb: the tenant has an audit chain (reset only starts a missing one)")

// Reset starts a new chain for a tenant that has no chain head, with r as
// its first record (r.Tenant names the tenant; its Details are replaced by
// details plus where the new chain starts). Records left without a head are
// kept as they are, as evidence: the new chain continues after the last of
// them (previous_seq and previous_mac say which), so they still verify
// from the start if they are intact; with none left it starts at seq 1
// (previous_seq 0). Returns the sealed record.
func (s *Store) Reset(ctx context.Context, r audit.Record, details map[string]any) (audit.Record, error) {
	err := s.db.InTxContext(ctx, func(ctx context.Context, tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&headRow{}).Where("tenant_fp = ?", r.Tenant).Count(&n).Error; err != nil {
			return fmt.Errorf("read audit chain: %w", err)
		}
		if n > 0 {
			return ErrChainExists
		}
		d := make(map[string]any, len(details)+3)
		for k, v := range details {
			d[k] = v
		}
		prevSeq, prevMAC := int64(0), s.keys.Genesis(r.Tenant)
		var last recordRow
		err := tx.Where("tenant_fp = ?", r.Tenant).Order("seq DESC").Limit(1).Take(&last).Error
		switch {
		case err == nil:
			prevSeq, prevMAC = last.Seq, last.MAC
			d["previous_mac"] = last.MAC
			d["previous_head"] = "last remaining record"
		case errors.Is(err, gorm.ErrRecordNotFound):
			d["previous_head"] = "unknown (no record left)"
		default:
			return fmt.Errorf("read audit records: %w", err)
		}
		d["previous_seq"] = prevSeq
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&headRow{
			TenantFP: r.Tenant, Seq: prevSeq, MAC: prevMAC, HeadMAC: s.keys.HeadMAC(r.Tenant, prevSeq, prevMAC),
		})
		if res.Error != nil {
			return fmt.Errorf("create audit chain: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrChainExists // another reset or writer won
		}
		r.Details = audit.CanonicalDetails(d)
		recs := []audit.Record{r}
		if err := s.append(ctx, tx, recs); err != nil {
			return err
		}
		r = recs[0]
		return nil
	})
	return r, err
}

// Heads returns every tenant's chain head, in fingerprint order.
func (s *Store) Heads(ctx context.Context) ([]audit.Head, error) {
	var rows []headRow
	if err := s.db.Conn(ctx).Order("tenant_fp").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read audit chain heads: %w", err)
	}
	out := make([]audit.Head, len(rows))
	for i, h := range rows {
		out[i] = toHead(h)
	}
	return out, nil
}

// Head returns a tenant's chain head; found is false when it has none.
func (s *Store) Head(ctx context.Context, tenant string) (audit.Head, bool, error) {
	var h headRow
	err := s.db.Conn(ctx).Where("tenant_fp = ?", tenant).Take(&h).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return audit.Head{}, false, nil
	}
	if err != nil {
		return audit.Head{}, false, fmt.Errorf("read audit chain head: %w", err)
	}
	return toHead(h), true, nil
}

// RecordAt returns a tenant's record with sequence number seq; found is
// false when there is none.
func (s *Store) RecordAt(ctx context.Context, tenant string, seq int64) (audit.Record, bool, error) {
	var r recordRow
	err := s.db.Conn(ctx).Where("tenant_fp = ? AND seq = ?", tenant, seq).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return audit.Record{}, false, nil
	}
	if err != nil {
		return audit.Record{}, false, fmt.Errorf("read audit record: %w", err)
	}
	return toRecord(r), true, nil
}
