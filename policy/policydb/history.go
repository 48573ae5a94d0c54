package policydb

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"gorm.io/gorm"

	"github.com/ourway/auth/policy"
)

// Changed reports whether the tenant with this handle has changed: a
// policy version above 0, or rules stored in its domain. It reads in the
// transaction carried by ctx, if any. An unknown tenant has not changed.
func (s *Store) Changed(ctx context.Context, handle policy.KeyHash) (bool, error) {
	g := s.db.Conn(ctx)
	var t tenantRow
	err := g.Select("id, policy_version").Where("key_hash = ?", string(handle)).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read tenant: %w", err)
	}
	if t.PolicyVersion > 0 {
		return true, nil
	}
	dom := strconv.FormatInt(t.ID, 10)
	var n int64
	if err := g.Raw(`SELECT COUNT(*) FROM (SELECT 1 FROM casbin_rule
		WHERE (ptype LIKE 'p%' AND v1 = ?) OR (ptype LIKE 'g%' AND v2 = ?) LIMIT 1) r`, dom, dom).
		Scan(&n).Error; err != nil {
		return false, fmt.Errorf("read rules: %w", err)
	}
	return n > 0, nil
}

// ChangedTenant is a tenant that has changed, and so must have an audit
// chain.
type ChangedTenant struct {
	ID      int64
	Handle  policy.KeyHash
	Version int64
	// Rules says whether the tenant has stored rules.
	Rules bool
}

// ChangedTenants lists, in id order, every tenant that has changed: a
// policy version above 0, or rules stored in its domain.
func (s *Store) ChangedTenants(ctx context.Context) ([]ChangedTenant, error) {
	g := s.db.Conn(ctx)
	var doms []string
	if err := g.Raw(`SELECT DISTINCT v1 FROM casbin_rule WHERE ptype LIKE 'p%'
		UNION SELECT DISTINCT v2 FROM casbin_rule WHERE ptype LIKE 'g%'`).Scan(&doms).Error; err != nil {
		return nil, fmt.Errorf("read rule domains: %w", err)
	}
	withRules := make(map[string]bool, len(doms))
	for _, d := range doms {
		withRules[d] = true
	}
	var rows []tenantRow
	if err := g.Select("id, key_hash, policy_version").Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	var out []ChangedTenant
	for _, t := range rows {
		rules := withRules[strconv.FormatInt(t.ID, 10)]
		if t.PolicyVersion > 0 || rules {
			out = append(out, ChangedTenant{ID: t.ID, Handle: policy.KeyHash(t.KeyHash), Version: t.PolicyVersion, Rules: rules})
		}
	}
	return out, nil
}
