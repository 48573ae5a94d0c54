package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/config"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// auditKeyring resolves the audit key: AUTH_AUDIT_KEY, else the file named
// by AUTH_AUDIT_KEY_FILE; in development mode only, a key generated once
// and kept in a file beside the database. Outside development mode a
// missing or weak key refuses to start.
func auditKeyring(cfg config.Config, log *slog.Logger) (*audit.Keyring, error) {
	key, source := cfg.Audit.Key.Reveal(), "AUTH_AUDIT_KEY"
	if key == "" && cfg.Audit.KeyFile != "" {
		b, err := os.ReadFile(cfg.Audit.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("AUTH_AUDIT_KEY_FILE: %w", err)
		}
		key, source = strings.TrimSpace(string(b)), "AUTH_AUDIT_KEY_FILE"
	}
	if key == "" {
		if !cfg.Development() {
			return nil, errors.New("AUTH_AUDIT_KEY (or AUTH_AUDIT_KEY_FILE) is required outside development mode: " +
				"set it to at least 32 random characters kept outside the database, e.g. `openssl rand -hex 32`, " +
				"or set AUTH_ENV=development for a local key")
		}
		var err error
		if key, source, err = developmentKey(cfg); err != nil {
			return nil, err
		}
		log.Warn("development mode: using a local audit key; set AUTH_AUDIT_KEY in production", "file", source)
	}
	if jwt := cfg.JWT.Secret.Reveal(); jwt != "" && subtle.ConstantTimeCompare([]byte(jwt), []byte(key)) == 1 {
		// One leaked secret must not both forge tokens and reseal the trail.
		return nil, fmt.Errorf("JWT_SECRET_KEY must differ from the audit key (%s): give each its own random value", source)
	}
	k, err := audit.NewKeyring([]byte(key))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return k, nil
}

// developmentKey returns the development audit key, creating it on first use.
func developmentKey(cfg config.Config) (string, string, error) {
	path := cfg.Database.Path + ".audit-key"
	if cfg.Database.Type != "sqlite" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", err
		}
		path = filepath.Join(home, ".auth-audit-key")
	}
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), path, nil
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", err
	}
	key := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write development audit key: %w", err)
	}
	return key, path, nil
}

const auditUsage = `Usage:
  auth-server audit verify [--tenant CLIENT_KEY]

verify walks the audit chain of one tenant (or of every tenant) and exits 0
when it is intact; otherwise it names the first bad record and exits 1.
`

// auditCommand runs `auth-server audit …`.
func auditCommand(ctx context.Context, args []string, cfg config.Config, db *sqldb.DB, log *slog.Logger, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return fmt.Errorf("unknown audit command\n\n%s", auditUsage)
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	tenantKey := fs.String("tenant", "", "client key of the tenant to verify (default: every tenant)")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w\n\n%s", err, auditUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q\n\n%s", fs.Arg(0), auditUsage)
	}
	if err := db.Current(ctx); err != nil {
		return err
	}
	keys, err := auditKeyring(cfg, log)
	if err != nil {
		return err
	}
	store := auditdb.New(db, keys)
	var tenants []string
	if *tenantKey != "" {
		kh, err := policy.ParseClientKey(*tenantKey)
		if err != nil {
			return errors.New("--tenant: not a valid client key (a UUID4)")
		}
		// The trail is kept under the tenant's handle (its first key):
		// a key issued by rotation names the same tenant.
		rec, found, err := policydb.New(db).FindKey(ctx, kh)
		if err != nil {
			return err
		}
		if found {
			kh = rec.Handle
		}
		tenants = []string{keys.TenantFingerprint(string(kh))}
	} else if tenants, err = store.Tenants(ctx); err != nil {
		return err
	}
	var total int64
	for _, t := range tenants {
		n, err := store.Verify(ctx, t)
		if err != nil {
			return fmt.Errorf("audit chain broken: %w", err)
		}
		total += n
		fmt.Fprintf(stdout, "tenant %s: %d records, chain intact\n", t, n)
	}
	_, err = fmt.Fprintf(stdout, "audit trail intact: %d tenant(s), %d record(s)\n", len(tenants), total)
	return err
}

// startRetention schedules the daily purge of records older than the
// retention period (none when it is 0).
func startRetention(cfg config.Config, store *auditdb.Store, log *slog.Logger) (gocron.Scheduler, error) {
	if cfg.Audit.RetentionDays == 0 {
		return nil, nil
	}
	s, err := gocron.NewScheduler(gocron.WithLocation(time.UTC))
	if err != nil {
		return nil, err
	}
	keep := time.Duration(cfg.Audit.RetentionDays) * 24 * time.Hour
	purge := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		n, err := store.Purge(ctx, time.Now().Add(-keep))
		if err != nil {
			// Chains that do not verify are left alone (as evidence); the
			// others were purged.
			log.Error("audit retention purge failed", "deleted", n, "err", err)
			return
		}
		log.Info("audit retention purge", "deleted", n, "retention_days", cfg.Audit.RetentionDays)
	}
	if _, err := s.NewJob(gocron.DurationJob(time.Hour), gocron.NewTask(purge),
		gocron.WithSingletonMode(gocron.LimitModeReschedule), gocron.WithStartAt(gocron.WithStartImmediately())); err != nil {
		return nil, err
	}
	s.Start()
	return s, nil
}
