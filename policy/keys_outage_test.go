package policy_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// downKeyStore is a key store whose lookups fail while down is set.
type downKeyStore struct {
	policy.KeyStore // nil: only FindKey and TouchKey are used
	down            atomic.Bool
	rec             policy.KeyRecord
}

// TouchKey fails while down, and records nothing otherwise.
func (s *downKeyStore) TouchKey(context.Context, policy.KeyHash, time.Time) error {
	if s.down.Load() {
		return errConnRefused
	}
	return nil
}

func (s *downKeyStore) FindKey(_ context.Context, key policy.KeyHash) (policy.KeyRecord, bool, error) {
	if s.down.Load() {
		return policy.KeyRecord{}, false, errConnRefused
	}
	if key != s.rec.Handle {
		return policy.KeyRecord{}, false, nil
	}
	return s.rec, true, nil
}

// While the database is unavailable a key resolves from its last lookup,
// so checks of a loaded tenant keep answering; a key never looked up fails
// fast with ErrUnavailable.
func TestKeysResolveFromLastLookupWhileUnavailable(t *testing.T) {
	ctx := context.Background()
	known, other := mustKey(t, keyA), mustKey(t, keyB)
	store := &downKeyStore{rec: policy.KeyRecord{Handle: known, TenantID: 1}}
	reads := breaker.New(breaker.Options{Name: "database_read", Errors: 1, Timeout: time.Minute,
		Failure: func(err error) bool { return errors.Is(err, errConnRefused) }})
	keys := policy.NewKeys(policydb.GuardKeys(store, reads, nil), policy.KeyOptions{CacheTTL: time.Nanosecond})
	if h, err := keys.Resolve(ctx, known); err != nil || h != known {
		t.Fatalf("Resolve before the outage = %q, %v", h, err)
	}
	store.down.Store(true)
	for i := 0; i < 3; i++ {
		if h, err := keys.Resolve(ctx, known); err != nil || h != known {
			t.Errorf("Resolve %d of a known key during the outage = %q, %v; want its last lookup", i, h, err)
		}
	}
	if _, err := keys.Resolve(ctx, other); !errors.Is(err, policy.ErrUnavailable) {
		t.Errorf("Resolve of a key never looked up during the outage: %v, want ErrUnavailable", err)
	}
	if got := reads.State(); got != breaker.Open {
		t.Errorf("read breaker = %v after a failed lookup, want open", got)
	}
	if _, _, err := keys.Rotate(ctx, known); !errors.Is(err, policy.ErrUnavailable) {
		t.Errorf("Rotate during the outage: %v, want ErrUnavailable", err)
	}
}
