package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/settings"
)

const policyUsage = `Usage:
  auth-server policy export --tenant ID [--out FILE]
                         write the tenant's roles and rules as a Casbin policy file (CSV)
  auth-server policy import --tenant ID [--merge] [--dry-run] FILE|-
                         replace the tenant's roles and rules by those of a policy file
                         (--merge: add to them), in one audited change; - reads stdin

ID is the tenant id that tenant create and tenant list print (or a client key of the tenant).
`

// policyArgs are the arguments of `policy export|import`.
type policyArgs struct {
	tenant, out, file string
	merge, dryRun     bool
}

// parsePolicyArgs reads the flags of a policy command, before and after
// the file argument.
func parsePolicyArgs(cmd string, args []string) (policyArgs, error) {
	var a policyArgs
	fs := flag.NewFlagSet("policy "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.tenant, "tenant", "", "tenant id (from tenant list) or client key")
	if cmd == "export" {
		fs.StringVar(&a.out, "out", "", "file to write (default: standard output)")
	} else {
		fs.BoolVar(&a.merge, "merge", false, "add to the tenant's roles and rules instead of replacing them")
		fs.BoolVar(&a.dryRun, "dry-run", false, "validate and report, change nothing")
	}
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return a, fmt.Errorf("policy %s: %w\n\n%s", cmd, err, policyUsage)
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if a.tenant == "" {
		return a, fmt.Errorf("policy %s: --tenant ID is required\n\n%s", cmd, policyUsage)
	}
	switch {
	case cmd == "export" && len(rest) == 0:
	case cmd == "import" && len(rest) == 1:
		a.file = rest[0]
	case cmd == "import" && len(rest) == 0:
		return a, fmt.Errorf("policy import: the policy file to import is required (- reads standard input)\n\n%s", policyUsage)
	default:
		return a, fmt.Errorf("policy %s: unexpected argument %q\n\n%s", cmd, rest[len(rest)-1], policyUsage)
	}
	return a, nil
}

// policyCommand runs `auth-server policy export|import`.
func policyCommand(ctx context.Context, args []string, cfg settings.Config, log *slog.Logger, db *sqldb.DB,
	store *policydb.Store, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || (args[0] != "export" && args[0] != "import") {
		return fmt.Errorf("unknown policy command\n\n%s", policyUsage)
	}
	a, err := parsePolicyArgs(args[0], args[1:])
	if err != nil {
		return err
	}
	if err := db.Current(ctx); err != nil {
		return err
	}
	if err := store.CheckEncryption(ctx); err != nil {
		return err
	}
	id, handle, err := resolveTenant(ctx, store, a.tenant)
	if err != nil {
		return err
	}
	var rec audit.Recorder = audit.Nop{}
	if args[0] == "import" && !a.dryRun {
		// An import is a change, recorded in the tenant's audit chain.
		ring, err := auditKeyring(cfg, log)
		if err != nil {
			return err
		}
		rec = audit.NewTrail(ring, auditdb.New(db, ring), nil, audit.TrailOptions{
			AfterCommit: sqldb.AfterCommit, SealResources: cfg.Crypto.Enabled,
		})
	}
	svc, err := policy.New(store, cfg.Policy.ModelText, policy.Options{
		MaxRoleDepth: cfg.Policy.MaxRoleDepth, Recorder: rec, Timeout: cfg.Ops.DBTimeout, Logger: log,
	})
	if err != nil {
		return modelError(cfg, err)
	}
	if args[0] == "export" {
		return exportPolicy(ctx, svc, handle, a.out, stdout)
	}
	return importPolicy(ctx, svc, id, handle, a, stdin, stdout)
}

// exportPolicy writes the tenant's policy file to out (a new file, readable
// by its owner only: it holds every name in clear) or stdout.
func exportPolicy(ctx context.Context, svc *policy.Service, handle policy.KeyHash, out string, stdout io.Writer) error {
	f, err := svc.ExportPolicy(ctx, handle)
	if err != nil {
		return err
	}
	if out == "" || out == "-" {
		return f.WriteCSV(stdout)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := f.WriteCSV(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("--out: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "exported %d role(s) and %d rule(s) to %s\n", len(f.Roles), len(f.Rules), out)
	return err
}

// importPolicy reads, validates and imports a policy file.
func importPolicy(ctx context.Context, svc *policy.Service, id int64, handle policy.KeyHash, a policyArgs,
	stdin io.Reader, stdout io.Writer) error {
	in := stdin
	if a.file != "-" {
		f, err := os.Open(a.file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	file, err := policy.ParsePolicyCSV(in)
	if err == nil {
		var res policy.ImportResult
		res, err = svc.ImportPolicy(ctx, handle, file, policy.ImportOptions{Merge: a.merge, DryRun: a.dryRun})
		if err == nil {
			return printImport(stdout, id, a, res)
		}
	}
	var ie *policy.ImportError
	if errors.As(err, &ie) {
		return fmt.Errorf("%s: nothing was imported: %w", name(a.file), err)
	}
	return err
}

// name is how a file argument is named in messages.
func name(file string) string {
	if file == "-" {
		return "standard input"
	}
	return file
}

// printImport reports what an import changed (or would change).
func printImport(w io.Writer, id int64, a policyArgs, r policy.ImportResult) error {
	mode := "replace"
	if a.merge {
		mode = "merge"
	}
	counts := fmt.Sprintf("%d role(s) created, %d deleted; %d rule(s) added, %d removed", r.RolesCreated, r.RolesDeleted, r.RulesAdded, r.RulesRemoved)
	if a.dryRun {
		counts = strings.NewReplacer(" created", " to create", " deleted", " to delete", " added", " to add", " removed", " to remove").Replace(counts)
		_, err := fmt.Fprintf(w, "dry run (%s): %s has %d role(s) and %d rule(s), valid; tenant %d: %s; nothing changed\n",
			mode, name(a.file), r.Roles, r.Rules, id, counts)
		return err
	}
	_, err := fmt.Fprintf(w, "imported %s into tenant %d (%s): %s; policy version %d "+
		"(running servers reload the tenant within AUTH_SYNC_INTERVAL)\n", name(a.file), id, mode, counts, r.Version)
	return err
}
