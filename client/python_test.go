package client_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// findPython returns a python3 that can import urllib3: $AUTH_TEST_PYTHON,
// else the first python3 on PATH (then among pyenv's shims) that can. Without one the test is skipped,
// or fails when AUTH_TEST_REQUIRE_SERVICES=1.
func findPython(t *testing.T) string {
	t.Helper()
	var candidates []string
	if p := os.Getenv("AUTH_TEST_PYTHON"); p != "" {
		candidates = append(candidates, p)
	} else {
		dirs := filepath.SplitList(os.Getenv("PATH"))
		// pyenv's shims, in case PATH lacks them (a bare CI environment).
		if root := os.Getenv("PYENV_ROOT"); root != "" {
			dirs = append(dirs, filepath.Join(root, "shims"))
		}
		if home, err := os.UserHomeDir(); err == nil {
			dirs = append(dirs, filepath.Join(home, ".pyenv", "shims"))
		}
		seen := map[string]bool{}
		for _, dir := range dirs {
			p := filepath.Join(dir, "python3")
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 && !seen[p] {
				seen[p] = true
				candidates = append(candidates, p)
			}
		}
	}
	var tried []string
	for _, p := range candidates {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, p, "-c", "import sys, urllib3; assert sys.version_info >= (3, 8)").CombinedOutput()
		cancel()
		if err == nil {
			return p
		}
		tried = append(tried, p+": "+strings.TrimSpace(lastLine(string(out))))
	}
	msg := "no python3 (3.8+) with urllib3 found on PATH (set AUTH_TEST_PYTHON); tried: " + strings.Join(tried, "; ")
	if len(tried) == 0 {
		msg = "no python3 found on PATH (set AUTH_TEST_PYTHON)"
	}
	if os.Getenv("AUTH_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

var unittestRan = regexp.MustCompile(`(?m)^Ran (\d+) tests? in `)

// runUnittest runs python -m unittest with args in clients/python and
// fails t unless every test ran and passed (a skip is a failure).
func runUnittest(t *testing.T, python string, env []string, args ...string) {
	t.Helper()
	dir := filepath.Join(moduleDir, "clients", "python")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{"-m", "unittest"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{
		"PYTHONPATH=" + dir, "PYTHONDONTWRITEBYTECODE=1", "AUTH_TEST_REQUIRE_SERVICES=1",
	}, env...)...)
	out, err := cmd.CombinedOutput()
	text := string(out)
	m := unittestRan.FindStringSubmatch(text)
	switch {
	case err != nil:
		t.Fatalf("python -m unittest %s: %v\n%s", strings.Join(args, " "), err, text)
	case m == nil || m[1] == "0":
		t.Fatalf("python -m unittest %s ran no test:\n%s", strings.Join(args, " "), text)
	case strings.Contains(text, "skipped"):
		t.Fatalf("python -m unittest %s skipped tests:\n%s", strings.Join(args, " "), text)
	}
	t.Logf("python -m unittest %s: ran %s tests, all passed", strings.Join(args, " "), m[1])
}

// TestPythonClient runs the Python client's unittest suite against a real
// auth-server, then its outage tests against the same address once that
// server is stopped.
func TestPythonClient(t *testing.T) {
	python := findPython(t)
	// The live workflow test delivers webhooks to a receiver of its own.
	s := startServer(t, "AUTH_WEBHOOK_ALLOWED_HOSTS=127.0.0.1")
	runUnittest(t, python, []string{"AUTH_TEST_URL=" + s.base}, "discover", "-s", "tests", "-t", "tests", "-v")
	if err := s.stop(); err != nil {
		t.Fatalf("stop auth-server: %v", err)
	}
	runUnittest(t, python, []string{"AUTH_TEST_STOPPED_URL=" + s.base}, "discover", "-s", "tests", "-t", "tests", "-p", "test_down.py", "-v")
}
