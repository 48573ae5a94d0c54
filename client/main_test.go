package client_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
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

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is one running auth-server process.
type server struct {
	base    string // http://127.0.0.1:PORT
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result, valid after done
	once    sync.Once
	stopErr error
}

const startTimeout = 30 * time.Second

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
	cmd := exec.Command(binPath, "serve")
	cmd.Env = serverEnv(dbPath, extra...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	s := &server{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addrc := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		found := false
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = s.stderr.Write(append(append([]byte(nil), line...), '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if !found && json.Unmarshal(line, &rec) == nil && rec.Msg == "auth-server listening" {
				found = true
				addrc <- rec.Addr
			}
		}
		_, _ = io.Copy(s.stderr, pipe)
	}()
	go func() {
		<-readDone
		s.err = cmd.Wait()
		close(s.done)
	}()
	fail := func(format string, args ...any) (*server, error) {
		_ = cmd.Process.Kill()
		<-s.done
		return nil, fmt.Errorf(format+"\nstderr:\n%s", append(args, s.stderr.String())...)
	}
	var addr string
	select {
	case addr = <-addrc:
	case <-s.done:
		return nil, fmt.Errorf("exited before listening (%v)\nstderr:\n%s", s.err, s.stderr.String())
	case <-time.After(startTimeout):
		return fail("no \"auth-server listening\" log line within %v", startTimeout)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fail("listening addr %q: %v", addr, err)
	}
	s.base = "http://127.0.0.1:" + port
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := hc.Get(s.base + "/ping")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			return fail("GET /ping did not answer 200 within %v (last error %v)", startTimeout, err)
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("exited while waiting for /ping (%v)\nstderr:\n%s", s.err, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits for a clean exit. It is safe to call more
// than once.
func (s *server) stop() error {
	s.once.Do(func() {
		select {
		case <-s.done:
			s.stopErr = fmt.Errorf("exited before it was stopped: %v", s.err)
			return
		default:
		}
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			s.stopErr = err
			return
		}
		select {
		case <-s.done:
			if s.err != nil {
				s.stopErr = fmt.Errorf("unclean exit after SIGTERM: %v", s.err)
			}
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			s.stopErr = errors.New("no exit within 20s of SIGTERM")
		}
	})
	return s.stopErr
}

// deadlineCtx is a context for one test step.
func deadlineCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
