package main

import (
	"context"
	"log/slog"

	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/settings"
)

// prepareStorage brings the schema up to date (AUTH_MIGRATE_ON_START) or
// checks that it is, checks that no other program damaged it (a Casbin
// tool running gorm-adapter's AutoMigrate changes casbin_rule: see
// sqldb.CheckSchema; only `auth-server migrate` repairs that, even with
// AUTH_MIGRATE_ON_START), and checks that the stored names agree with the
// encryption settings.
func prepareStorage(ctx context.Context, cfg settings.Config, db *sqldb.DB, store *policydb.Store, log *slog.Logger) error {
	if cfg.Database.MigrateOnStart {
		if _, err := db.Migrate(ctx, log); err != nil {
			return err
		}
	} else if err := db.Current(ctx); err != nil {
		return err
	}
	if err := db.CheckSchema(ctx); err != nil {
		return err
	}
	return store.CheckEncryption(ctx)
}
