package benchsuite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/ourway/auth/internal/benchreport"
	"github.com/ourway/auth/internal/gobench"
)

// goBench runs `go test -run '^$' -bench PATTERN ARGS… PKG` in the module
// root with env added, and parses its output. quoted is the command as a
// user would type it.
func (s *suite) goBench(ctx context.Context, env []string, pattern, pkg string, args ...string) (*benchreport.GoRun, gobench.Output, error) {
	full := append(append([]string{"test", "-run", "^$", "-bench", pattern}, args...), pkg)
	quoted := []string{"go"}
	for _, a := range full {
		quoted = append(quoted, shellQuote(a))
	}
	run := &benchreport.GoRun{Command: strings.Join(quoted, " ")}
	var prefix []string
	for _, e := range env {
		if k, v, _ := strings.Cut(e, "="); k != "AUTH_TEST_REQUIRE_SERVICES" {
			prefix = append(prefix, k+"="+shellQuote(v))
		}
	}
	if len(prefix) > 0 {
		run.Command = strings.Join(prefix, " ") + " " + run.Command
	}
	s.log.Info("go test", "command", run.Command)
	cmd := exec.CommandContext(ctx, s.cfg.Go, full...)
	cmd.Dir = s.cfg.Root
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	parsed, perr := gobench.Parse(bytes.NewReader(out.Bytes()))
	if perr != nil {
		return run, parsed, perr
	}
	if err != nil || parsed.Failed {
		return run, parsed, fmt.Errorf("%s: %v\n%s", run.Command, err, tail(out.String(), 4000))
	}
	run.Benchmarks = parsed.Benchmarks
	return run, parsed, nil
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and -_./:=@,.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// runInProcess runs the policy core's benchmarks: checks at 10, 1 000 and
// 100 000 grants, with each consistency demand on a current tenant, and at
// 1, 100 and 10 000 tenants, and writes.
func (s *suite) runInProcess(ctx context.Context) error {
	benchtime := "0.3s"
	if s.cfg.Quick {
		benchtime = "1000x"
	}
	var env []string
	if s.pg {
		env = append(env, "AUTH_TEST_POSTGRES_URL="+s.cfg.PostgresURL)
	}
	run, out, err := s.goBench(ctx, env, "^(BenchmarkHasPermission|BenchmarkWrite)$/^(grants|consistency|tenants|sqlite|postgres)$",
		"./policy/", "-benchmem", "-benchtime", benchtime)
	if err != nil {
		return err
	}
	if _, ok := out.Get("BenchmarkWrite/postgres"); !ok {
		run.Note = "`BenchmarkWrite/postgres` did not run: PostgreSQL was not reachable."
	}
	s.rep.InProcess = run
	return nil
}

// runReplica runs the replica benchmarks (PostgreSQL and Redis):
// propagation of a change, and the change feed's long-poll wake-up.
func (s *suite) runReplica(ctx context.Context) error {
	if !s.pg {
		s.skip("replica propagation and the change feed wake-up: they need PostgreSQL")
		return nil
	}
	if err := s.redisUp(ctx); err != nil {
		s.skip("replica propagation and the change feed wake-up: Redis did not answer at %s (-redis, AUTH_TEST_REDIS_URL): %v", s.cfg.RedisURL, err)
		return nil
	}
	n := "200x"
	if s.cfg.Quick {
		n = "30x"
	}
	env := []string{"AUTH_TEST_POSTGRES_URL=" + s.cfg.PostgresURL, "AUTH_TEST_REDIS_URL=" + s.cfg.RedisURL, "AUTH_TEST_REQUIRE_SERVICES=1"}
	run, _, err := s.goBench(ctx, env, "^(BenchmarkReplicaPropagation|BenchmarkChangeFeedWake)$", "./tests/e2e/", "-benchtime", n)
	if err != nil {
		return err
	}
	s.rep.Replica = run
	return nil
}
