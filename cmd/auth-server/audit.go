package main

import (
	"context"
	"crypto/ed25519"
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
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/settings"
)

// auditKeyring resolves the audit key: AUTH_AUDIT_KEY, else the file named
// by AUTH_AUDIT_KEY_FILE; in development mode only, a key generated once
// and kept in a file beside the database. Outside development mode a
// missing or weak key refuses to start.
func auditKeyring(cfg settings.Config, log *slog.Logger) (*audit.Keyring, error) {
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
		var (
			err     error
			created bool
		)
		if key, source, created, err = developmentKey(cfg); err != nil {
			return nil, err
		}
		if created {
			log.Warn("development mode: created a local audit key; set AUTH_AUDIT_KEY in production", "file", source)
		}
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

// developmentKey returns the development audit key and its file, creating
// it on first use (created is then true).
func developmentKey(cfg settings.Config) (key, path string, created bool, err error) {
	path = cfg.Database.Path + ".audit-key"
	if cfg.Database.Type != "sqlite" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", false, err
		}
		path = filepath.Join(home, ".auth-audit-key")
	}
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), path, false, nil
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", false, err
	}
	key = hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", "", false, fmt.Errorf("write development audit key: %w", err)
	}
	return key, path, true, nil
}

const auditUsage = `Usage:
  auth-server audit verify [--tenant CLIENT_KEY] [--checkpoints FILE [--checkpoint-pubkey FILE]]
  auth-server audit reset --tenant ID|CLIENT_KEY --yes [--note TEXT]
  auth-server audit checkpoint [--sink FILE|stdout|log]
  auth-server audit checkpoint-keygen --out FILE

verify walks the audit chain of one tenant (or of every tenant) and exits 0
when it is intact; otherwise it names every bad chain (the first bad record
of each) and exits 1. Every tenant that has changed (policy version above 0,
or stored rules) must have a chain. With --checkpoints it also checks each
signed checkpoint of the file against the chains: a chain deleted, cut or
rolled back behind a checkpoint fails.

reset starts a new chain for a tenant whose chain is missing (ID as listed
by ` + "`auth-server tenant list`" + `, or a client key); the reset is the first record
of the new chain. Changes of such a tenant are refused until then.

checkpoint signs the head of every chain with AUTH_AUDIT_CHECKPOINT_KEY_FILE
and writes the checkpoints to AUTH_AUDIT_CHECKPOINT_SINK (or --sink).

checkpoint-keygen writes a new Ed25519 signing key to FILE (PEM, mode 0600)
and its public key to FILE.pub.
`

// auditCommand runs `auth-server audit …`.
func auditCommand(ctx context.Context, args []string, cfg settings.Config, db *sqldb.DB, log *slog.Logger, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("missing audit command\n\n%s", auditUsage)
	}
	var run func(ctx context.Context, args []string, cfg settings.Config, db *sqldb.DB, log *slog.Logger, stdout io.Writer) error
	switch args[0] {
	case "verify":
		run = auditVerify
	case "reset":
		run = auditReset
	case "checkpoint":
		run = auditCheckpoint
	default:
		return fmt.Errorf("unknown audit command %q\n\n%s", args[0], auditUsage)
	}
	return run(ctx, args[1:], cfg, db, log, stdout)
}

// auditFlags parses the flags of `audit NAME`, refusing stray arguments.
func auditFlags(name string, args []string, define func(fs *flag.FlagSet)) error {
	fs := flag.NewFlagSet("audit "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w\n\n%s", err, auditUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q\n\n%s", fs.Arg(0), auditUsage)
	}
	return nil
}

// auditVerify runs `auth-server audit verify`.
func auditVerify(ctx context.Context, args []string, cfg settings.Config, db *sqldb.DB, log *slog.Logger, stdout io.Writer) error {
	var tenantKey, cpFile, cpPub string
	if err := auditFlags("verify", args, func(fs *flag.FlagSet) {
		fs.StringVar(&tenantKey, "tenant", "", "client key of the tenant to verify (default: every tenant)")
		fs.StringVar(&cpFile, "checkpoints", "", "file of signed checkpoints to check the chains against")
		fs.StringVar(&cpPub, "checkpoint-pubkey", "", "trusted checkpoint public key (PEM)")
	}); err != nil {
		return err
	}
	if cpPub != "" && cpFile == "" {
		return fmt.Errorf("--checkpoint-pubkey needs --checkpoints FILE\n\n%s", auditUsage)
	}
	if err := db.Current(ctx); err != nil {
		return err
	}
	keys, err := auditKeyring(cfg, log)
	if err != nil {
		return err
	}
	var pub ed25519.PublicKey
	if cpFile != "" {
		if pub, err = checkpointPublicKey(cfg, cpPub); err != nil {
			return err
		}
	}
	store := auditdb.New(db, keys)
	pstore := policydb.New(db)
	changedList, err := pstore.ChangedTenants(ctx)
	if err != nil {
		return err
	}
	changed := make(map[string]policydb.ChangedTenant, len(changedList))
	for _, c := range changedList {
		changed[keys.TenantFingerprint(string(c.Handle))] = c
	}
	var tenants []string
	if tenantKey != "" {
		kh, err := policy.ParseClientKey(tenantKey)
		if err != nil {
			return errors.New("--tenant: not a valid client key (a UUID4)")
		}
		// The trail is kept under the tenant's handle (its first key):
		// a key issued by rotation names the same tenant.
		rec, found, err := pstore.FindKey(ctx, kh)
		if err != nil {
			return err
		}
		if found {
			kh = rec.Handle
		}
		tenants = []string{keys.TenantFingerprint(string(kh))}
	} else {
		if tenants, err = store.Tenants(ctx); err != nil {
			return err
		}
		// A tenant that has changed has a chain, whether or not anything
		// of it is left.
		for fp := range changed {
			if !slices.Contains(tenants, fp) {
				tenants = append(tenants, fp)
			}
		}
		slices.Sort(tenants)
	}
	var failures []string
	fail := func(fp string, err error) {
		if c, ok := changed[fp]; ok {
			failures = append(failures, fmt.Sprintf("FAILED tenant id %d: %v", c.ID, err))
		} else {
			failures = append(failures, fmt.Sprintf("FAILED: %v", err))
		}
		fmt.Fprintln(stdout, failures[len(failures)-1])
	}
	var total int64
	for _, t := range tenants {
		if _, found, err := store.Head(ctx, t); err != nil {
			return err
		} else if c, ok := changed[t]; ok && !found {
			fail(t, &audit.Problem{Tenant: t, Reason: fmt.Sprintf("the tenant has changed (policy version %d, rules stored: %v) "+
				"but has no audit chain (its chain head was deleted); `auth-server audit reset --tenant %d` starts a new one",
				c.Version, c.Rules, c.ID)})
			continue
		}
		n, err := store.Verify(ctx, t)
		var p *audit.Problem
		if errors.As(err, &p) {
			fail(t, fmt.Errorf("audit chain broken: %w", err))
			continue
		}
		if err != nil {
			return err
		}
		total += n
		fmt.Fprintf(stdout, "tenant %s: %d records, chain intact\n", t, n)
	}
	if cpFile != "" {
		n, probs, err := verifyCheckpoints(ctx, store, cpFile, pub, tenantKey != "", tenants)
		if err != nil {
			return err
		}
		for _, p := range probs {
			failures = append(failures, "FAILED checkpoint: "+p)
			fmt.Fprintln(stdout, failures[len(failures)-1])
		}
		fmt.Fprintf(stdout, "checkpoints: %d signed checkpoint(s) checked against the chains\n", n)
	}
	if len(failures) > 0 {
		return fmt.Errorf("audit verify failed: %d problem(s) found (listed above)", len(failures))
	}
	_, err = fmt.Fprintf(stdout, "audit trail intact: %d tenant(s), %d record(s)\n", len(tenants), total)
	return err
}

// verifyCheckpoints checks every checkpoint of a file (of the given tenants
// only, when only is set) against the chains as stored now, and returns how
// many it checked and the problems found.
func verifyCheckpoints(ctx context.Context, store *auditdb.Store, file string, pub ed25519.PublicKey, only bool, tenants []string) (int, []string, error) {
	cps, problems, err := readCheckpoints(file, pub)
	if err != nil {
		return 0, nil, err
	}
	type point struct {
		tenant string
		seq    int64
		mac    string
	}
	seen := map[point]bool{}
	n := 0
	for _, c := range cps {
		if only && !slices.Contains(tenants, c.Tenant) {
			continue
		}
		n++
		if seen[point{c.Tenant, c.Seq, c.MAC}] {
			continue
		}
		seen[point{c.Tenant, c.Seq, c.MAC}] = true
		head, found, err := store.Head(ctx, c.Tenant)
		if err != nil {
			return n, nil, err
		}
		var rec audit.Record
		var recFound bool
		if found && c.Seq > 0 {
			if rec, recFound, err = store.RecordAt(ctx, c.Tenant, c.Seq); err != nil {
				return n, nil, err
			}
		}
		if err := c.CheckHead(head, found, rec, recFound); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return n, problems, nil
}

// auditReset runs `auth-server audit reset`.
func auditReset(ctx context.Context, args []string, cfg settings.Config, db *sqldb.DB, log *slog.Logger, stdout io.Writer) error {
	var tenantArg, note string
	var yes bool
	if err := auditFlags("reset", args, func(fs *flag.FlagSet) {
		fs.StringVar(&tenantArg, "tenant", "", "tenant id (as `auth-server tenant list` shows it) or client key")
		fs.BoolVar(&yes, "yes", false, "confirm")
		fs.StringVar(&note, "note", "", "operator note recorded with the reset")
	}); err != nil {
		return err
	}
	if tenantArg == "" {
		return fmt.Errorf("--tenant ID is required: the tenant whose missing audit chain to start anew (see `auth-server tenant list`)\n\n%s", auditUsage)
	}
	if len(note) > 500 || !utf8.ValidString(note) || strings.ContainsRune(note, 0) {
		return errors.New("--note: at most 500 bytes of text")
	}
	if err := db.Current(ctx); err != nil {
		return err
	}
	keys, err := auditKeyring(cfg, log)
	if err != nil {
		return err
	}
	id, handle, err := resolveTenant(ctx, policydb.New(db), tenantArg)
	if err != nil {
		return err
	}
	fp := keys.TenantFingerprint(string(handle))
	if !yes {
		return fmt.Errorf("reset starts a new audit chain for tenant %d (%s) and records that it did; "+
			"run it again with --yes to confirm", id, fp)
	}
	details := map[string]any{}
	if note != "" {
		details["note"] = note
	}
	rec, err := auditdb.New(db, keys).Reset(ctx, audit.Record{
		Tenant: fp, Time: time.Now().UTC(), Action: audit.ResetChain, Resource: "audit_chain", Success: true,
	}, details)
	if errors.Is(err, auditdb.ErrChainExists) {
		return fmt.Errorf("tenant %d (%s) has an audit chain: reset only starts a chain that is missing "+
			"(`auth-server audit verify` says what is wrong with an existing one)", id, fp)
	}
	if err != nil {
		return err
	}
	log.Warn("audit chain reset", "tenant", fp, "tenant_id", id, "seq", rec.Seq, "details", rec.Details)
	_, err = fmt.Fprintf(stdout, "tenant %d (%s): new audit chain started; its first record is %s at seq %d %s\n",
		id, fp, audit.ResetChain, rec.Seq, rec.Details)
	return err
}

// resolveTenant finds a tenant by id or by one of its client keys.
func resolveTenant(ctx context.Context, store *policydb.Store, arg string) (int64, policy.KeyHash, error) {
	if kh, err := policy.ParseClientKey(arg); err == nil {
		rec, found, err := store.FindKey(ctx, kh)
		if err != nil {
			return 0, "", err
		}
		if !found {
			return 0, "", errors.New("--tenant: no tenant has this client key")
		}
		return rec.TenantID, rec.Handle, nil
	}
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id < 1 {
		return 0, "", errors.New("--tenant: not a tenant id (a positive number) or a client key (a UUID4)")
	}
	list, err := store.ListTenants(ctx)
	if err != nil {
		return 0, "", err
	}
	for _, t := range list {
		if t.ID == id {
			return id, t.Handle, nil
		}
	}
	return 0, "", fmt.Errorf("--tenant: no tenant with id %d", id)
}

// auditCheckpoint runs `auth-server audit checkpoint`.
func auditCheckpoint(ctx context.Context, args []string, cfg settings.Config, db *sqldb.DB, log *slog.Logger, stdout io.Writer) error {
	sink := cfg.Audit.CheckpointSink
	if err := auditFlags("checkpoint", args, func(fs *flag.FlagSet) {
		fs.StringVar(&sink, "sink", sink, "a file path, stdout or log")
	}); err != nil {
		return err
	}
	if sink == "" {
		return fmt.Errorf("--sink: a file path, stdout or log\n\n%s", auditUsage)
	}
	signer, err := checkpointSigner(cfg)
	if err != nil {
		return err
	}
	if err := db.Current(ctx); err != nil {
		return err
	}
	keys, err := auditKeyring(cfg, log)
	if err != nil {
		return err
	}
	w := &checkpointWriter{store: auditdb.New(db, keys), keys: keys, signer: signer, sink: sink,
		stdout: stdout, log: log, now: time.Now}
	n, err := w.write(ctx)
	if err != nil {
		return err
	}
	if sink != "stdout" {
		_, err = fmt.Fprintf(stdout, "%d checkpoint(s) signed by %s written to %s\n", n, signer.KeyID(), sink)
	}
	return err
}

// checkpointKeygen runs `auth-server audit checkpoint-keygen`: no database
// is involved.
func checkpointKeygen(args []string, stdout io.Writer) error {
	var out string
	if err := auditFlags("checkpoint-keygen", args, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "", "file for the private key (the public key goes to FILE.pub)")
	}); err != nil {
		return err
	}
	if out == "" {
		return fmt.Errorf("--out FILE is required\n\n%s", auditUsage)
	}
	priv, pub, err := audit.GenerateCheckpointKey()
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{out, priv, 0o600}, {out + ".pub", pub, 0o644}} {
		fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("--out: %w (an existing key is never overwritten)", err)
		}
		if _, err := fh.Write(f.data); err != nil {
			fh.Close()
			return err
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	key, err := audit.ParseCheckpointPublicKey(pub)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "checkpoint signing key %s written to %s (keep it outside the database);\n"+
		"public key in %s (give it to whoever runs `audit verify --checkpoints`)\n", audit.KeyID(key), out, out+".pub")
	return err
}
