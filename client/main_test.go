package client_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/settings"
)

// The live tests run the real auth-server binary, built once by TestMain,
// on a random port with a throwaway SQLite database.

var (
	// binPath is the auth-server binary built by TestMain.
	binPath string
	// moduleDir is the repository root.
	moduleDir string
	// shared is the server that the live tests and the examples share;
	// each test uses its own tenant (a fresh key).
	shared *server
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	var err error
	if moduleDir, err = testenv.ModuleRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "client tests:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "auth-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "client tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binPath, err = testenv.BuildServer(dir); err != nil {
		fmt.Fprintln(os.Stderr, "client tests:", err)
		return 1
	}
	shared, err = launch(filepath.Join(dir, "shared.sqlite3"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "client tests: start auth-server:", err)
		return 1
	}
	// The examples read where the service is from the environment, as a
	// program would.
	os.Setenv("AUTH_URL", shared.base)
	os.Setenv("AUTH_KEY", randomKey())
	code := m.Run()
	if err := shared.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "client tests: stop auth-server:", err)
		if code == 0 {
			code = 1
		}
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "shared auth-server stderr:\n%s", shared.stderr.String())
	}
	return code
}

// randomKey returns a fresh UUID4 client key: a new, empty tenant.
func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// randomHex returns n random bytes in hex: secret material for a server.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// server is one running auth-server process.
type server struct {
	base   string // http://127.0.0.1:PORT
	proc   *testenv.Process
	stderr *testenv.LogBuffer
}

// serverEnv is the environment of a test server: the test's own, without
// any setting of auth-server, plus a random port and dbPath; extra entries
// win.
func serverEnv(dbPath string, extra ...string) []string {
	env := append(settings.Unconfigured(os.Environ()),
		"SERVER_HOST=127.0.0.1", "SERVER_PORT=0", "AUTH_DB_PATH="+dbPath,
		"AUTH_LOG_FORMAT=json", "AUTH_AUDIT_KEY="+randomHex(32), "JWT_SECRET_KEY="+randomHex(32),
		// No rate limit in the way: the suites send hundreds of requests,
		// and make many tenants.
		"RATE_LIMIT_DEFAULT=1000000 per second", "AUTH_TENANT_CREATION_LIMIT=1000000 per second",
		"AUTH_TENANT_CREATION_LIMIT_GLOBAL=1000000 per second")
	return append(env, extra...)
}

// startServer runs a server of its own for t, stopped when t ends; extra
// settings (KEY=VALUE) are added to its environment.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	s, err := launch(filepath.Join(t.TempDir(), "auth.sqlite3"), extra...)
	if err != nil {
		t.Fatalf("start auth-server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("stop auth-server: %v", err)
		}
		if t.Failed() {
			t.Logf("auth-server stderr:\n%s", s.stderr.String())
		}
	})
	return s
}

// launch starts the binary and waits until it answers GET /ping.
func launch(dbPath string, extra ...string) (*server, error) {
	proc, err := testenv.Start(binPath, serverEnv(dbPath, extra...), nil)
	if err != nil {
		return nil, err
	}
	return &server{base: proc.Base, proc: proc, stderr: proc.Log}, nil
}

// stop sends SIGTERM and waits for a clean exit. It is safe to call more
// than once.
func (s *server) stop() error {
	return s.proc.Stop(20 * time.Second)
}

// deadlineCtx is a context for one test step.
func deadlineCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
