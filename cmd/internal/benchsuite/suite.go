// Package benchsuite runs the service's benchmark suite: it builds and
// starts auth-server processes on generated tenants, drives them over
// loopback HTTP next to a bare net/http ceiling, runs the Go benchmarks of
// the policy core and of replica propagation, times the admin console's
// pages on a large tenant, and gathers every figure in a
// benchreport.Report.
package benchsuite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for the admin connection

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/benchreport"
)

// The sections of a run, for Config.Only.
const (
	SectionCeiling     = "ceiling"
	SectionHTTP        = "http"
	SectionWrites      = "writes"
	SectionConsistency = "consistency"
	SectionInProcess   = "inprocess"
	SectionCold        = "cold"
	SectionReplica     = "replica"
	SectionConsole     = "console"
	SectionTenants     = "tenants"
)

// Sections lists every section in the order they run.
var Sections = []string{SectionCeiling, SectionHTTP, SectionWrites, SectionConsistency, SectionInProcess, SectionCold, SectionReplica, SectionConsole, SectionTenants}

// Config says what to run and with what.
type Config struct {
	// Root is the module's root directory (go build and go test run there).
	Root string
	// Go is the go command.
	Go string
	// Server is a prebuilt auth-server binary; empty: the suite builds one.
	Server string
	// Self is this program's executable, run with CeilingArgs as the ceiling.
	Self string
	// CeilingArgs are the arguments that make Self serve the ceiling on
	// 127.0.0.1:PortPlaceholder (the placeholder is replaced by a free port).
	CeilingArgs []string
	// PostgresURL is an administrative PostgreSQL URL; the suite creates
	// and drops databases of its own through it. Unreachable: PostgreSQL
	// is skipped with a note.
	PostgresURL string
	// RedisURL is the Redis of the replica benchmark.
	RedisURL string
	// Quick makes every phase short (a smoke run).
	Quick bool
	// Only restricts the run to these sections (empty: all).
	Only []string
	// Notes is the file of hand-written notes, included in the report.
	Notes string
	// NotesLink is how the report links to Notes.
	NotesLink string
	// Command is the command line that reproduces a section, with SECTION
	// for the section's name.
	Command string
	// KeepTemp keeps the temporary directory (databases, server logs) and
	// logs where it is.
	KeepTemp bool
	// Log receives progress.
	Log *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Root == "" || c.Go == "" {
		errs = append(errs, errors.New("benchsuite: Root and Go are required"))
	}
	if c.Self == "" {
		errs = append(errs, errors.New("benchsuite: Self is required"))
	}
	for _, s := range c.Only {
		if !contains(Sections, s) {
			errs = append(errs, fmt.Errorf("unknown section %q (sections: %s)", s, strings.Join(Sections, ", ")))
		}
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// timing holds the lengths of the load phases.
type timing struct {
	warmup, max, open time.Duration
	connections       int
}

// suite is one run in progress.
type suite struct {
	cfg    Config
	log    *slog.Logger
	t      timing
	tmp    string
	server string // the auth-server binary
	rep    *benchreport.Report
	pg     bool // PostgreSQL answers at cfg.PostgresURL
	// auditKey is the audit key of every server, and auditKeys its keyring,
	// which seals the generated tenants' first audit records.
	auditKey  string
	auditKeys *audit.Keyring
}

func (s *suite) want(section string) bool {
	if len(s.cfg.Only) == 0 {
		return true
	}
	if section == SectionCeiling && (contains(s.cfg.Only, SectionHTTP) || contains(s.cfg.Only, SectionWrites)) {
		return true // the ratios need it
	}
	return contains(s.cfg.Only, section)
}

func (s *suite) skip(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.log.Warn("skipped", "what", msg)
	s.rep.Skipped = append(s.rep.Skipped, msg)
}

// Run runs the configured sections and returns their figures.
func Run(ctx context.Context, cfg Config) (*benchreport.Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	s := &suite{cfg: cfg, log: cfg.Log, rep: &benchreport.Report{Quick: cfg.Quick, NotesPath: cfg.NotesLink}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.t = timing{warmup: time.Second, max: 3 * time.Second, open: 3 * time.Second, connections: 16}
	if cfg.Quick {
		s.t = timing{warmup: 200 * time.Millisecond, max: time.Second, open: time.Second, connections: 16}
	}
	tmp, err := os.MkdirTemp("", "auth-bench-")
	if err != nil {
		return nil, err
	}
	if cfg.KeepTemp {
		s.log.Info("keeping the temporary directory", "dir", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	s.tmp = tmp
	s.auditKey = "bench-" + randomSecret()
	if s.auditKeys, err = audit.NewKeyring([]byte(s.auditKey)); err != nil {
		return nil, err
	}
	s.rep.Machine = machine(ctx, cfg.Root, cfg.Go)
	if b, err := os.ReadFile(cfg.Notes); err == nil {
		s.rep.Notes = string(b)
	}
	s.pg = s.pingPostgres(ctx)

	if s.want(SectionHTTP) || s.want(SectionWrites) || s.want(SectionConsistency) || s.want(SectionCold) || s.want(SectionConsole) || s.want(SectionTenants) {
		if err := s.buildServer(ctx); err != nil {
			return nil, err
		}
	}
	steps := []struct {
		section string
		run     func(context.Context) error
	}{
		{SectionCeiling, s.runCeiling},
		{SectionHTTP, s.runHTTP}, // writes run inside, on the same servers
		{SectionConsistency, s.runConsistency},
		{SectionInProcess, s.runInProcess},
		{SectionCold, s.runCold},
		{SectionReplica, s.runReplica},
		{SectionConsole, s.runConsole},
		{SectionTenants, s.runTenants},
	}
	for _, st := range steps {
		want := s.want(st.section)
		if st.section == SectionHTTP {
			want = s.want(SectionHTTP) || s.want(SectionWrites)
		}
		if !want {
			continue
		}
		s.log.Info("section", "name", st.section)
		if err := st.run(ctx); err != nil {
			return s.rep, fmt.Errorf("%s: %w", st.section, err)
		}
	}
	s.rep.Machine.Wall = time.Since(start)
	s.rep.Machine.LoadEnd = loadAverage()
	return s.rep, nil
}

// buildServer builds cmd/auth-server as the end-to-end tests do
// (internal/testenv.Build: CGO_ENABLED=0 go build), so that their build of
// it, in the replica benchmark, is a cache hit.
func (s *suite) buildServer(ctx context.Context) error {
	if s.cfg.Server != "" {
		s.server = s.cfg.Server
		return nil
	}
	s.server = filepath.Join(s.tmp, "auth-server")
	s.log.Info("building auth-server")
	cmd := exec.CommandContext(ctx, s.cfg.Go, "build", "-o", s.server, "./cmd/auth-server")
	cmd.Dir = s.cfg.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/auth-server: %v\n%s", err, out)
	}
	return nil
}

// pingPostgres reports whether PostgreSQL answers at the admin URL.
func (s *suite) pingPostgres(ctx context.Context) bool {
	if s.cfg.PostgresURL == "" {
		s.skip("PostgreSQL: no URL given")
		return false
	}
	db, err := sql.Open("pgx", s.cfg.PostgresURL)
	if err == nil {
		defer db.Close()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err = db.PingContext(pctx)
	}
	if err != nil {
		s.skip("every PostgreSQL figure: PostgreSQL did not answer at the URL given (-postgres, AUTH_TEST_POSTGRES_URL): %v", err)
		return false
	}
	return true
}

// redisUp reports whether something listens at the Redis URL's address.
func (s *suite) redisUp(ctx context.Context) error {
	u, err := url.Parse(s.cfg.RedisURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("bad Redis URL %q", s.cfg.RedisURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "6379")
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	return c.Close()
}

// command is the command that reproduces one section.
func (s *suite) command(section string) string {
	return strings.ReplaceAll(s.cfg.Command, "SECTION", section)
}
