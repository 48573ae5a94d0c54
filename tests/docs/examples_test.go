package docs

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/settings"
)

// binPath is the auth-server binary built by TestMain.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "auth-docs-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "docs:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binPath, err = testenv.BuildServer(dir); err != nil {
		fmt.Fprintln(os.Stderr, "docs:", err)
		return 1
	}
	return m.Run()
}

// documents are the files whose examples run: the README and docs/*.md.
func documents(t *testing.T) []string {
	t.Helper()
	root := moduleRoot(t)
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(docs)
	return append([]string{filepath.Join(root, "README.md")}, docs...)
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestDocumentExamples runs every shell example of the README and of docs/
// against a live server started as `make run` starts it, in a home directory
// of its own, and compares the output with what the documents show.
func TestDocumentExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the documents' examples against a live server")
	}
	root := moduleRoot(t)
	for _, path := range documents(t) {
		rel, _ := filepath.Rel(root, path)
		t.Run(rel, func(t *testing.T) {
			content, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range runDocument(t, rel, string(content)) {
				t.Error(f)
			}
		})
	}
}

// TestExamplesCatchDrift proves the runner fails a document whose shown
// output differs from what the service prints, at the step that differs,
// and passes the same document unchanged.
func TestExamplesCatchDrift(t *testing.T) {
	if testing.Short() {
		t.Skip("runs examples against a live server")
	}
	good, err := os.ReadFile(filepath.Join("testdata", "drift.md"))
	if err != nil {
		t.Fatal(err)
	}
	if f := runDocument(t, "drift.md", string(good)); len(f) != 0 {
		t.Fatalf("the unchanged document fails:\n%s", strings.Join(f, "\n"))
	}
	cases := []struct {
		name, from, to string
		line           int
	}{
		{"changed answer", `# {"result":true}`, `# {"result":false}`, 10},
		{"changed message", `Permission check for user 'ann'`, `Permission check for user 'anne'`, 12},
		{"changed exit status", "# (exit status 3)", "# (exit status 0)", 18},
		{"missing line", "# second\n", "", 14},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			changed := strings.Replace(string(good), c.from, c.to, 1)
			if changed == string(good) {
				t.Fatalf("%q is not in testdata/drift.md", c.from)
			}
			f := runDocument(t, "drift.md", changed)
			if len(f) != 1 {
				t.Fatalf("want one failure, got %d:\n%s", len(f), strings.Join(f, "\n"))
			}
			if want := fmt.Sprintf("drift.md:%d:", c.line); !strings.HasPrefix(f[0], want) {
				t.Fatalf("failure does not name %s:\n%s", want, f[0])
			}
		})
	}
}

// runDocument runs the examples of one document and returns its failures,
// each prefixed with "name:line:". A document without examples to run
// starts no server.
func runDocument(t *testing.T, name, content string) []string {
	t.Helper()
	blocks, err := Parse(content)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", name, err)}
	}
	var steps []Step
	for _, b := range blocks {
		if b.Skip == "" {
			steps = append(steps, b.Steps...)
		}
	}
	if len(steps) == 0 {
		return nil
	}
	home := t.TempDir()
	ports := map[string]string{"4000": freePort(t), "4001": freePort(t)}
	env := shellEnv(t, home)
	startServer(t, env, ports["4000"])

	outDir := t.TempDir()
	var script strings.Builder
	fmt.Fprintf(&script, "cd %q\n", moduleRoot(t))
	for i, s := range steps {
		fmt.Fprintf(&script, "{\n%s\n} >%q 2>&1 </dev/null\necho $? >%q\n",
			rewrite(s.Script, ports), filepath.Join(outDir, fmt.Sprintf("%d.out", i)),
			filepath.Join(outDir, fmt.Sprintf("%d.rc", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-c", script.String())
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	log, err := cmd.CombinedOutput()
	// Whatever the examples left running in the background (a second
	// server) goes with the shell's process group.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	if ctx.Err() != nil {
		return []string{fmt.Sprintf("%s: the examples did not finish in 5 minutes\n%s", name, log)}
	}
	if err != nil {
		return []string{fmt.Sprintf("%s: the examples' shell failed: %v\n%s", name, err, log)}
	}

	var failures []string
	for i, s := range steps {
		out, _ := os.ReadFile(filepath.Join(outDir, fmt.Sprintf("%d.out", i)))
		rcText, err := os.ReadFile(filepath.Join(outDir, fmt.Sprintf("%d.rc", i)))
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s:%d: did not run (an earlier step ended the shell)\n%s", name, s.Line, s.Script))
			continue
		}
		rc, _ := strconv.Atoi(strings.TrimSpace(string(rcText)))
		if rc != s.ExitStatus {
			failures = append(failures, fmt.Sprintf("%s:%d: exit status %d, want %d\n%s\noutput:\n%s", name, s.Line, rc, s.ExitStatus, s.Script, out))
			continue
		}
		if s.Expected == nil {
			continue
		}
		expected := make([]string, len(s.Expected))
		for j, e := range s.Expected {
			expected[j] = rewrite(e, ports)
		}
		if diff := Match(expected, string(out)); diff != "" {
			failures = append(failures, fmt.Sprintf("%s:%d: output differs\n%s\n%s", name, s.Line, s.Script, diff))
		}
	}
	return failures
}

// rewrite points the examples at the test's server, ports and binary.
func rewrite(text string, ports map[string]string) string {
	for doc, real := range ports {
		text = strings.ReplaceAll(text, ":"+doc, ":"+real)
		text = strings.ReplaceAll(text, "SERVER_PORT="+doc, "SERVER_PORT="+real)
	}
	return strings.ReplaceAll(text, "./bin/auth-server", binPath)
}

// shellEnv is the environment of the examples' shell and of the server: the
// test's own without any setting of auth-server, in a fresh home directory
// (where `make run` keeps its SQLite file and development audit key), with
// the Go and Python tool set-ups of the real home kept.
func shellEnv(t *testing.T, home string) []string {
	t.Helper()
	var env []string
	for _, kv := range settings.Unconfigured(os.Environ()) {
		if !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	realHome, _ := os.UserHomeDir()
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		if os.Getenv(k) == "" {
			out, err := exec.Command("go", "env", k).Output()
			if err == nil && strings.TrimSpace(string(out)) != "" {
				env = append(env, k+"="+strings.TrimSpace(string(out)))
			}
		}
	}
	if os.Getenv("PYENV_ROOT") == "" && realHome != "" {
		if _, err := os.Stat(filepath.Join(realHome, ".pyenv")); err == nil {
			env = append(env, "PYENV_ROOT="+filepath.Join(realHome, ".pyenv"))
		}
	}
	path := os.Getenv("PATH")
	if _, err := exec.LookPath("go"); err != nil {
		path = "/usr/local/go/bin:" + path
	}
	return append(env, "HOME="+home, "PATH="+path, "GOFLAGS=", "GOTOOLCHAIN=local")
}

// startServer runs the server as `make run` does (development mode, the
// default SQLite file in the home directory) on port, until the test ends.
func startServer(t *testing.T, env []string, port string) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath)
	cmd.Env = append(append([]string{}, env...), "AUTH_ENV=development", "SERVER_PORT="+port)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	})
	url := "http://127.0.0.1:" + port + "/ping"
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("the server exited at start:\n%s", log)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not answer /ping within 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
