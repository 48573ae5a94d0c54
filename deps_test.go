package auth_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/ourway/auth"

// goList runs go list in the module root and returns its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	cmd := exec.Command(gobin, append([]string{"list"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	return strings.Fields(string(out))
}

// The dependency direction of SPEC §3: the policy core never imports echo
// or gorm (its gorm store, policy/policydb, may use gorm); the HTTP layer
// never imports gorm, Casbin or the database package.
func TestDependencyDirection(t *testing.T) {
	type rule struct {
		forbidden string // an import path or a prefix ending in "/"
		direct    bool   // only the package's own imports count
	}
	rulesFor := func(pkg string) []rule {
		switch {
		case pkg == module+"/policy/policydb" || strings.HasPrefix(pkg, module+"/policy/policydb/"):
			return []rule{{forbidden: "github.com/labstack/echo/v4"}}
		case pkg == module+"/policy" || strings.HasPrefix(pkg, module+"/policy/"):
			return []rule{{forbidden: "github.com/labstack/echo/v4"}, {forbidden: "gorm.io/gorm"}}
		case pkg == module+"/api" || strings.HasPrefix(pkg, module+"/api/"):
			return []rule{
				{forbidden: "gorm.io/gorm"},
				{forbidden: module + "/internal/sqldb"},
				// api uses policy, which is built on Casbin: api's own
				// files must not import it.
				{forbidden: "github.com/casbin/", direct: true},
			}
		}
		return nil
	}
	matches := func(path, forbidden string) bool {
		if strings.HasSuffix(forbidden, "/") {
			return strings.HasPrefix(path, forbidden)
		}
		return path == forbidden || strings.HasPrefix(path, forbidden+"/")
	}

	pkgs := goList(t, "./policy/...", "./api/...")
	seen := map[string]bool{}
	for _, pkg := range pkgs {
		rules := rulesFor(pkg)
		if rules == nil {
			t.Errorf("go list returned %s, which no rule covers", pkg)
			continue
		}
		seen[strings.TrimPrefix(pkg, module+"/")] = true
		deps := goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg)
		imports := goList(t, "-f", `{{join .Imports "\n"}}`, pkg)
		for _, r := range rules {
			list := deps
			if r.direct {
				list = imports
			}
			var bad []string
			for _, d := range list {
				if d != pkg && matches(d, r.forbidden) {
					bad = append(bad, d)
				}
			}
			if len(bad) > 0 {
				how := "depends on"
				if r.direct {
					how = "imports"
				}
				t.Errorf("%s %s %s", pkg, how, strings.Join(bad, ", "))
			}
		}
	}
	for _, want := range []string{"policy", "policy/policydb", "api"} {
		if !seen[want] {
			t.Errorf("package %s not checked (go list returned %v)", want, pkgs)
		}
	}
}

// Circuit breakers sit at the storage boundary (policydb.Guard,
// auditdb.Guard): the policy core and the audit trail see only their own
// interfaces and errors, never the breaker package.
func TestCoreDoesNotImportBreakers(t *testing.T) {
	for _, pkg := range []string{module + "/policy", module + "/audit"} {
		for _, d := range goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg) {
			if d == module+"/internal/breaker" || strings.HasPrefix(d, "github.com/eapache/go-resiliency") {
				t.Errorf("%s depends on %s", pkg, d)
			}
		}
	}
}
