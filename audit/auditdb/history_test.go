package auditdb_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/sqldb"
)

// A tenant without a chain head starts a chain with its first change or,
// if it has never changed, with any record; a tenant that has changed
// before is refused (ErrChainMissing) and no head is made up for it.
func TestAppendRefusesToRestartAMissingChain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, _ func() *sqldb.DB) {
		ctx := context.Background()
		changed := map[string]bool{"t_changed": true}
		var asked atomic.Int64
		st := auditdb.NewWithOptions(db, keyring(t), auditdb.Options{History: func(_ context.Context, fp string) (bool, error) {
			asked.Add(1)
			return changed[fp], nil
		}})
		rec := func(fp string, version int64) audit.Record {
			r := entry(fp, 0, audit.CreateRole, "", "r")
			r.Version = version
			return r
		}
		cases := []struct {
			name    string
			rec     audit.Record
			refused bool
			asks    int64 // History calls
		}{
			{"first change of a new tenant", rec("t_new1", 1), false, 0},
			{"check of a tenant that never changed", rec("t_new2", 0), false, 1},
			{"later change, chain gone", rec("t_gone", 2), true, 0},
			{"check of a changed tenant, chain gone", rec("t_changed", 0), true, 1},
			{"first change, chain started meanwhile", rec("t_new1", 2), false, 0},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := asked.Load()
				err := st.Append(ctx, []audit.Record{tc.rec})
				var cm *audit.ChainMissingError
				switch {
				case tc.refused && (!errors.Is(err, audit.ErrChainMissing) || !errors.As(err, &cm) || cm.Tenant != tc.rec.Tenant):
					t.Fatalf("Append = %v, want a ChainMissingError naming %s", err, tc.rec.Tenant)
				case tc.refused && !strings.Contains(err.Error(), "audit reset"):
					t.Errorf("error %q does not say how to recover", err)
				case !tc.refused && err != nil:
					t.Fatalf("Append = %v, want nil", err)
				}
				if got := asked.Load() - before; got != tc.asks {
					t.Errorf("History asked %d times, want %d", got, tc.asks)
				}
				_, found, err := st.Head(ctx, tc.rec.Tenant)
				if err != nil || found == tc.refused {
					t.Errorf("Head(%s): found %v (%v), want %v", tc.rec.Tenant, found, err, !tc.refused)
				}
			})
		}
		// A batch mixing a refused tenant with others is refused whole (the
		// trail then writes the others alone).
		err := st.Append(ctx, []audit.Record{rec("t_new2", 0), rec("t_changed", 0)})
		if !errors.Is(err, audit.ErrChainMissing) {
			t.Fatalf("mixed batch: %v, want ErrChainMissing", err)
		}
		if _, err := st.Verify(ctx, "t_new2"); err != nil {
			t.Errorf("the refused batch left t_new2's chain broken: %v", err)
		}
	})
}

// Reset starts a missing chain with its own record first, and refuses a
// tenant that has a chain.
func TestReset(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, _ func() *sqldb.DB) {
		ctx := context.Background()
		st := auditdb.NewWithOptions(db, keyring(t), auditdb.Options{History: func(context.Context, string) (bool, error) { return true, nil }})
		if err := st.Append(ctx, []audit.Record{entry("t_a", 0, audit.CreateRole, "", "r")}); !errors.Is(err, audit.ErrChainMissing) {
			t.Fatalf("Append before reset = %v, want ErrChainMissing", err)
		}
		r, err := st.Reset(ctx, audit.Record{Tenant: "t_a", Action: audit.ResetChain, Resource: "audit_chain", Success: true},
			map[string]any{"note": "n"})
		if err != nil {
			t.Fatalf("Reset: %v", err)
		}
		if r.Seq != 1 || !strings.Contains(r.Details, `"previous_seq":0`) || !strings.Contains(r.Details, `"note":"n"`) {
			t.Errorf("reset record = %+v, want seq 1 with previous_seq 0 and the note", r)
		}
		if err := st.Append(ctx, []audit.Record{entry("t_a", 1, audit.CreateRole, "", "r")}); err != nil {
			t.Fatalf("Append after reset: %v", err)
		}
		if n, err := st.Verify(ctx, "t_a"); err != nil || n != 2 {
			t.Errorf("Verify after reset = %d, %v; want 2 records, intact", n, err)
		}
		if _, err := st.Reset(ctx, audit.Record{Tenant: "t_a", Action: audit.ResetChain}, nil); !errors.Is(err, auditdb.ErrChainExists) {
			t.Errorf("second Reset = %v, want ErrChainExists", err)
		}
	})
}
