package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPolicyExportImportSQLite(t *testing.T) {
	t.Parallel()
	testPolicyExportImport(t, sqliteServer)
}

func TestPolicyExportImportPostgresEncrypted(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testPolicyExportImport(t, encrypted(postgresServer))
}

// testPolicyExportImport exports a tenant with `auth-server policy export`
// and imports it into another, empty, tenant while a server runs: a dry
// run changes nothing, the import is refused whole for a bad line, and
// once imported the running server (which had the tenant loaded) answers
// every question about it as about the original, after one audited change.
func testPolicyExportImport(t *testing.T, newServer factory) {
	s := newServer(t, "AUTH_MODEL_PATH="+modelPath(t, "keymatch2.conf"), "AUTH_SYNC_INTERVAL=200ms")
	srcID, srcKey := s.createTenantID(t)
	dstID, dstKey := s.createTenantID(t)
	src, dst := s.client(srcKey), s.client(dstKey)
	for _, p := range []string{"/api/role/analyst", "/api/role/viewer", "/api/role/auditor", "/api/role/base",
		"/api/permission/analyst/%2Freports%2F%2A", "/api/permission/viewer/%2Freports%2F:id",
		"/api/permission/base/%2Fhome", "/api/role/viewer/parents/base",
		"/api/membership/john/analyst", "/api/membership/mary/viewer", "/api/membership/mary%40x.org/viewer"} {
		mustResult(t, src.post(t, p), true)
	}
	// The destination is loaded in the server, empty.
	expect(t, dst.get(t, "/api/roles"), 200, res(`[]`))

	dir := t.TempDir()
	file := filepath.Join(dir, "policy.csv")
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runBinary(t, s.env, 60*time.Second, append([]string{"policy"}, args...)...)
	}
	code, out, errOut := cli("export", "--tenant", srcID, "--out", file)
	if code != 0 || !strings.Contains(out, "exported 4 role(s) and 7 rule(s) to "+file) {
		t.Fatalf("export: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"# role: auditor", "p, role:analyst, " + srcID + ", /reports/*",
		"g, mary@x.org, role:viewer, " + srcID, "g, role:viewer, role:base, " + srcID} {
		if !strings.Contains(string(text), line+"\n") {
			t.Errorf("the export has no line %q:\n%s", line, text)
		}
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v, %v; want 0600", fi.Mode(), err)
	}

	// A dry run reports and changes nothing.
	code, out, errOut = cli("import", "--tenant", dstID, "--dry-run", file)
	if code != 0 || !strings.Contains(out, "dry run (replace)") || !strings.Contains(out, "4 role(s) to create, 0 to delete; 7 rule(s) to add, 0 to remove; nothing changed") {
		t.Fatalf("dry run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// A file with a bad line imports nothing.
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, append(append([]byte(nil), text...), "p, role:x, "+srcID+", /a b\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = cli("import", "--tenant", dstID, bad)
	if code == 0 || !strings.Contains(errOut, `invalid permission name "/a b"`) || !strings.Contains(errOut, "nothing was imported") {
		t.Errorf("bad file: exit %d, stderr:\n%s", code, errOut)
	}
	// Neither the dry run nor the refused import wrote anything.
	code, out, errOut = cli("export", "--tenant", dstID)
	if code != 0 || strings.Contains(out, "\np, ") || strings.Contains(out, "\ng, ") || strings.Contains(out, "# role:") ||
		!strings.Contains(out, "policy version 0") {
		t.Errorf("the destination after a dry run and a refused import: exit %d\n%s%s", code, out, errOut)
	}

	// The import, from standard input via a file argument of "-".
	code, out, errOut = runBinaryStdin(t, s.env, text, "policy", "import", "--tenant", dstID, "-")
	if code != 0 || !strings.Contains(out, "imported standard input into tenant "+dstID+" (replace): 4 role(s) created, 0 deleted; 7 rule(s) added, 0 removed") {
		t.Fatalf("import: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// The running server reloads the tenant it holds.
	deadline := time.Now().Add(pollDeadline)
	for !hasPermission(t, dst.get(t, "/api/has_permission/john/%2Freports%2Fq3")) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not pick up the import within %v", pollDeadline)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, path := range []string{"/api/roles", "/api/user_permissions/mary", "/api/role_permissions/viewer",
		"/api/which_users_can/%2Freports%2Fq3", "/api/which_users_can/%2Fhome", "/api/which_roles_can/%2Fhome",
		"/api/has_permission/mary/%2Freports%2Fq3%2Fx", "/api/has_permission/mary%40x.org/%2Fhome",
		"/api/has_permission/john/%2Fsales%2Fq3", "/api/members/viewer", "/api/role/viewer/parents"} {
		a, b := src.get(t, path), dst.get(t, path)
		if a.status != 200 || normalized(t, a) != normalized(t, b) {
			t.Errorf("GET %s: source %d %s, imported %d %s", path, a.status, normalized(t, a), b.status, normalized(t, b))
		}
	}
	// One audited change for the whole import.
	es := dst.auditAll(t, "action=IMPORT_POLICY")
	if len(es) != 1 || !es[0].Success || es[0].Details["mode"] != "replace" || es[0].Details["rules_added"] != float64(7) {
		t.Errorf("IMPORT_POLICY entries: %+v", es)
	}
	if code, out, errOut := runBinary(t, s.env, 60*time.Second, "audit", "verify"); code != 0 {
		t.Errorf("audit verify: exit %d\n%s\n%s", code, out, errOut)
	}
}

// runBinaryStdin runs the binary like runBinary, with stdin as its standard
// input.
func runBinaryStdin(t testing.TB, env []string, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("auth-server %v did not exit in time\nstderr:\n%s", args, stderr.String())
	case err != nil && !errors.As(err, &ee):
		t.Fatalf("run auth-server %v: %v", args, err)
	case err != nil:
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	return 0, stdout.String(), stderr.String()
}
