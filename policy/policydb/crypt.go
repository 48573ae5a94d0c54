package policydb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/casbin/casbin/v3/model"
	gormadapter "github.com/casbin/gorm-adapter/v3"
	"gorm.io/gorm"

	"github.com/ourway/auth/internal/fieldcrypt"
)

// ruleAdapter is the part of gorm-adapter the store uses. The plain adapter
// and the encrypting decorator both provide it.
type ruleAdapter interface {
	LoadFilteredPolicy(m model.Model, filter interface{}) error
	AddPoliciesCtx(ctx context.Context, sec, ptype string, rules [][]string) error
	RemovePolicyCtx(ctx context.Context, sec, ptype string, rule []string) error
	RemoveFilteredPolicyCtx(ctx context.Context, sec, ptype string, fieldIndex int, values ...string) error
}

var (
	_ ruleAdapter = (*gormadapter.Adapter)(nil)
	_ ruleAdapter = (*cryptAdapter)(nil)
)

// cryptAdapter decorates gorm-adapter with field encryption: subjects,
// roles and permissions are encrypted under the key of the tenant named by
// the rule's domain field, which stays clear (as does ptype) so that
// per-tenant filtered loads work. Casbin keeps clear values in memory and
// the table keeps Casbin's format.
type cryptAdapter struct {
	inner *gormadapter.Adapter
	keys  *fieldcrypt.Keyring
	db    *gorm.DB // the transaction (or pool) inner is bound to
}

// domainField is the index of the tenant in a rule of section sec.
func domainField(sec string) int {
	if sec == "g" {
		return 2
	}
	return 1
}

// sealed reports whether field i of a rule of section sec is encrypted.
func sealed(sec string, i int) bool {
	if sec == "g" {
		return i == 0 || i == 1
	}
	return i == 0 || i == 2
}

// variants returns the rule encrypted under every configured key, current
// first (a row may hold any of them while data is re-encrypted).
func (a *cryptAdapter) variants(sec string, rule []string) ([][]string, error) {
	return ruleVariants(a.keys, sec, rule)
}

// ruleVariants returns the stored forms of a rule of section sec: the rule
// itself without keys, else the rule with its sealed fields encrypted under
// every configured key, current first.
func ruleVariants(keys *fieldcrypt.Keyring, sec string, rule []string) ([][]string, error) {
	if keys == nil {
		return [][]string{append([]string(nil), rule...)}, nil
	}
	d := domainField(sec)
	if len(rule) <= d || rule[d] == "" {
		return nil, errors.New("policydb: an encrypted rule needs its tenant")
	}
	dom := rule[d]
	var out [][]string
	for i, v := range rule {
		if !sealed(sec, i) || v == "" {
			continue
		}
		vs, err := keys.Variants(dom, v)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = make([][]string, len(vs))
			for k := range out {
				out[k] = append([]string(nil), rule...)
			}
		}
		for k := range vs {
			out[k][i] = vs[k]
		}
	}
	if out == nil {
		out = [][]string{append([]string(nil), rule...)}
	}
	return out, nil
}

func (a *cryptAdapter) AddPoliciesCtx(ctx context.Context, sec, ptype string, rules [][]string) error {
	enc := make([][]string, 0, len(rules))
	for _, r := range rules {
		vs, err := a.variants(sec, r)
		if err != nil {
			return err
		}
		enc = append(enc, vs[0])
	}
	return a.inner.AddPoliciesCtx(ctx, sec, ptype, enc)
}

// RemovePolicyCtx removes the rule as gorm-adapter does (an empty field
// matches anything), whichever configured key its row is under.
func (a *cryptAdapter) RemovePolicyCtx(ctx context.Context, sec, ptype string, rule []string) error {
	return a.remove(ctx, sec, ptype, 0, rule)
}

func (a *cryptAdapter) RemoveFilteredPolicyCtx(ctx context.Context, sec, ptype string, fieldIndex int, values ...string) error {
	return a.remove(ctx, sec, ptype, fieldIndex, values)
}

var ruleColumns = [...]string{"v0", "v1", "v2", "v3", "v4", "v5"}

// remove deletes the rows of ptype whose fields from fieldIndex on equal
// values ("" matches anything), each encrypted field under any configured
// key, in one statement. One statement per key would miss a row that rekey
// re-encrypts meanwhile: on PostgreSQL the current key's form does not
// match it before rekey commits, and the previous key's form no longer
// does once the row lock is granted; a single condition that names every
// form is re-checked against the row's new version and matches.
func (a *cryptAdapter) remove(ctx context.Context, sec, ptype string, fieldIndex int, values []string) error {
	if fieldIndex < 0 || fieldIndex+len(values) > len(ruleColumns) {
		return fmt.Errorf("policydb: filter on fields %d..%d", fieldIndex, fieldIndex+len(values)-1)
	}
	where, args, err := ruleFilter(a.keys, ptype, fieldIndex, values, len(ruleColumns))
	if err != nil {
		return err
	}
	return a.db.WithContext(ctx).Where(where, args...).Delete(&gormadapter.CasbinRule{}).Error
}

// ruleFilter is the condition that selects the rows of ptype whose fields
// from fieldIndex on equal values ("" matches anything), each sealed field
// in any of its stored forms, in one condition (see remove); columns from
// width on are not compared.
func ruleFilter(keys *fieldcrypt.Keyring, ptype string, fieldIndex int, values []string, width int) (string, []any, error) {
	sec := ptype[:1]
	// Lay the filter out as a whole rule so that the variants can find the
	// tenant and the encrypted fields.
	rule := make([]string, max(fieldIndex+len(values), domainField(sec)+1))
	copy(rule[fieldIndex:], values)
	vs, err := ruleVariants(keys, sec, rule)
	if err != nil {
		return "", nil, err
	}
	where := []string{"ptype = ?"}
	args := []any{ptype}
	for i := fieldIndex; i < fieldIndex+len(values) && i < width; i++ {
		if rule[i] == "" {
			continue
		}
		forms := make([]string, 0, len(vs))
		for _, v := range vs {
			if !slices.Contains(forms, v[i]) {
				forms = append(forms, v[i])
			}
		}
		if len(forms) == 1 {
			where = append(where, ruleColumns[i]+" = ?")
			args = append(args, forms[0])
		} else {
			where = append(where, ruleColumns[i]+" IN ?")
			args = append(args, forms)
		}
	}
	return strings.Join(where, " AND "), args, nil
}

// LoadFilteredPolicy loads the encrypted rules into a scratch copy of m and
// adds them to m decrypted. A value that does not decrypt fails the load:
// neither ciphertext nor clear text is ever taken for a name.
func (a *cryptAdapter) LoadFilteredPolicy(m model.Model, filter interface{}) error {
	scratch := m.Copy()
	if err := a.inner.LoadFilteredPolicy(scratch, filter); err != nil {
		return err
	}
	// A tenant's names recur across its rules and encrypt alike: each
	// stored value is authenticated and decrypted once per load.
	opened := map[string]string{}
	for _, sec := range []string{"p", "g"} {
		for ptype := range scratch[sec] {
			rules, err := scratch.GetPolicy(sec, ptype)
			if err != nil {
				return err
			}
			for _, r := range rules {
				plain, err := a.open(sec, r, opened)
				if err != nil {
					return err
				}
				if ok, _ := m.HasPolicy(sec, ptype, plain); ok {
					continue // the same rule under two keys during rotation
				}
				if err := m.AddPolicy(sec, ptype, plain); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// open decrypts the sealed fields of a stored rule; opened holds the values
// decrypted so far, by tenant and stored value.
func (a *cryptAdapter) open(sec string, r []string, opened map[string]string) ([]string, error) {
	d := domainField(sec)
	if len(r) <= d {
		return nil, fmt.Errorf("policydb: stored %s rule has no tenant", sec)
	}
	out := append([]string(nil), r...)
	for i, v := range r {
		if !sealed(sec, i) || v == "" {
			continue
		}
		key := r[d] + "\x00" + v
		if p, ok := opened[key]; ok {
			out[i] = p
			continue
		}
		p, err := a.keys.Decrypt(r[d], v)
		if err != nil {
			return nil, fmt.Errorf("policydb: %s rule field %d of tenant %s: %w", sec, i, r[d], err)
		}
		opened[key] = p
		out[i] = p
	}
	return out, nil
}

// ruleAdapterFor binds the store's adapter (plain or encrypting) to db.
func (s *Store) ruleAdapterFor(db *gorm.DB) (ruleAdapter, error) {
	a, err := adapter(db)
	if err != nil {
		return nil, err
	}
	if s.keys == nil {
		return a, nil
	}
	return &cryptAdapter{inner: a, keys: s.keys, db: db}, nil
}
