package auth_test

import (
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ourway/auth"

// The layers of the module, top to bottom: a package may import project
// packages of its own layer or of a lower one, never of a higher one, so
// that nothing imports cmd or api from below. Adapters (policy/policydb,
// policy/policysync, audit/auditdb) share the layer of the core they adapt,
// and no package imports a package below its own path (an adapter depends
// on its core, never the other way). internal/ packages import only
// internal/ packages.
var layers = []struct {
	name     string
	packages []string // paths relative to the module; "x/..." for x and below
}{
	{"cmd", []string{"cmd/..."}},
	{"root", []string{"", "settings/..."}}, // the embedded defaults, and the settings composed of every package's section
	{"console", []string{"console/..."}},   // the admin console: a client of the API, in process
	{"api", []string{"api/..."}},
	{"workflow", []string{"workflow/..."}},
	{"webhook", []string{"webhook/..."}},   // signed webhooks: sent by workflows, verified by receivers
	{"decision", []string{"decision/..."}}, // records the core's answers
	{"policy", []string{"policy/..."}},
	{"audit", []string{"audit/..."}},
	{"internal", []string{"internal/..."}},
}

// apart are packages outside the layers: they import no project package
// but one another (the Go client and its example programs are used by
// other programs; tests use anything).
var apart = []string{"client/..."}

// unlayered are the test packages, free to import anything.
var unlayered = []string{"tests/..."}

// forbidden lists, per package, modules that it must not depend on
// (directly or through other packages): the policy and audit cores know
// neither HTTP, nor gorm, nor Casbin's adapters, nor circuit breakers; the HTTP layer does not
// reach into storage or Casbin itself.
var forbidden = []struct {
	pkg    string
	deps   []string // import paths or prefixes ending in "/"
	direct bool     // only the package's own imports count
}{
	// Circuit breakers sit at the storage boundary (policydb.Guard,
	// auditdb.Guard): the cores see only their own errors.
	{"policy", []string{"github.com/labstack/echo/", "gorm.io/", "github.com/casbin/gorm-adapter/", "github.com/casbin/redis-watcher/",
		module + "/internal/breaker", "github.com/eapache/go-resiliency/"}, false},
	{"audit", []string{"github.com/labstack/echo/", "gorm.io/", "github.com/casbin/",
		module + "/internal/breaker", "github.com/eapache/go-resiliency/"}, false},
	{"policy/policydb", []string{"github.com/labstack/echo/"}, false},
	{"policy/policysync", []string{"github.com/labstack/echo/", "gorm.io/"}, false},
	{"audit/auditdb", []string{"github.com/labstack/echo/"}, false},
	{"workflow", []string{"github.com/labstack/echo/", "gorm.io/"}, false},
	{"decision", []string{"github.com/labstack/echo/", "gorm.io/"}, false},
	{"api", []string{"gorm.io/", module + "/internal/sqldb"}, false},
	{"api", []string{"github.com/casbin/"}, true}, // api uses policy, built on Casbin, never Casbin itself
	// The console reaches the core through the API and a read interface:
	// no storage, no Casbin, no echo of its own.
	{"console", []string{"gorm.io/", module + "/internal/sqldb", "github.com/casbin/", "github.com/labstack/echo/"}, true},
}

// under reports whether rel is pattern's package or, for "x/...", x or a
// package below it.
func under(rel, pattern string) bool {
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == p || strings.HasPrefix(rel, p+"/")
	}
	return rel == pattern
}

func underAny(rel string, patterns []string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return under(rel, p) })
}

// layerOf returns the index of rel's layer (0 is the top), or -1.
func layerOf(rel string) int {
	for i, l := range layers {
		if underAny(rel, l.packages) {
			return i
		}
	}
	return -1
}

// project returns the module-relative path of an import path, and whether
// it is a package of this module.
func project(path string) (string, bool) {
	if path == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	return rel, ok
}

func matches(path, dep string) bool {
	if strings.HasSuffix(dep, "/") {
		return strings.HasPrefix(path+"/", dep)
	}
	return path == dep || strings.HasPrefix(path, dep+"/")
}

// violations checks the rules above on an import graph (every package of
// the build, the module's and its dependencies', mapped to its direct
// imports) and returns one line per broken rule, sorted.
func violations(graph map[string][]string) []string {
	var out []string
	for _, pkg := range slices.Sorted(maps.Keys(graph)) {
		rel, ok := project(pkg)
		if !ok || underAny(rel, unlayered) {
			continue
		}
		layer := layerOf(rel)
		isApart := underAny(rel, apart)
		if layer < 0 && !isApart {
			out = append(out, fmt.Sprintf("%s: in no layer (add it to deps_test.go)", pkg))
			continue
		}
		for _, imp := range graph[pkg] {
			irel, ok := project(imp)
			if !ok {
				continue
			}
			switch il := layerOf(irel); {
			case isApart && underAny(irel, apart):
				// The client's example programs use the client.
			case isApart:
				out = append(out, fmt.Sprintf("%s imports %s: %s imports no project package", pkg, imp, rel))
			case underAny(irel, unlayered) || underAny(irel, apart):
				out = append(out, fmt.Sprintf("%s imports %s, which is not a library", pkg, imp))
			case il < layer:
				out = append(out, fmt.Sprintf("%s imports %s: layer %s imports layer %s, which is above it", pkg, imp, layers[layer].name, layers[il].name))
			case rel == "" && irel != "" || rel != "" && strings.HasPrefix(irel, rel+"/"):
				if rel != "" { // the root package composes the layers below it
					out = append(out, fmt.Sprintf("%s imports %s: a core never imports its own adapters", pkg, imp))
				}
			}
		}
	}
	for _, f := range forbidden {
		pkg := module + "/" + f.pkg
		if _, ok := graph[pkg]; !ok {
			out = append(out, fmt.Sprintf("%s: not in the build (update deps_test.go)", pkg))
			continue
		}
		reach := graph[pkg]
		if !f.direct {
			reach = closure(graph, pkg)
		}
		for _, d := range reach {
			for _, bad := range f.deps {
				if matches(d, bad) {
					how := "depends on"
					if f.direct {
						how = "imports"
					}
					out = append(out, fmt.Sprintf("%s %s %s", pkg, how, d))
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// closure returns every package pkg depends on, directly or not.
func closure(graph map[string][]string, pkg string) []string {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, d := range graph[p] {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(pkg)
	return slices.Sorted(maps.Keys(seen))
}

// importGraph is the import graph of the module's packages and of
// everything they depend on (tests' imports left out), from go list.
func importGraph(t *testing.T) map[string][]string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", `{{if not .Standard}}{{.ImportPath}} {{join .Imports " "}}{{end}}`, "./...").Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list: %v\n%s", err, msg)
	}
	graph := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			graph[f[0]] = f[1:]
		}
	}
	return graph
}

// TestDependencyRules: the module's imports follow the layers
// (cmd → root and settings → api → workflow → decision → policy → audit →
// internal) and the
// forbidden-dependency rules above.
func TestDependencyRules(t *testing.T) {
	graph := importGraph(t)
	for _, want := range []string{"cmd/auth-server", "api", "workflow", "policy", "policy/policydb", "audit", "internal/sqldb", "client"} {
		if _, ok := graph[module+"/"+want]; !ok {
			t.Errorf("package %s is not in the import graph", want)
		}
	}
	for _, v := range violations(graph) {
		t.Error(v)
	}
}

// TestDependencyRulesCatchViolations: each kind of broken rule, added to
// the real import graph, is reported (so a rule cannot silently pass).
func TestDependencyRulesCatchViolations(t *testing.T) {
	real := importGraph(t)
	for _, tc := range []struct {
		name     string
		pkg, imp string // pkg gains an import of imp
		want     string // a part of the expected report
	}{
		{"policy imports api", "policy", module + "/api", "layer policy imports layer api"},
		{"api imports cmd", "api", module + "/cmd/auth-server", "layer api imports layer cmd"},
		{"policy imports settings", "policy", module + "/settings", "layer policy imports layer root"},
		{"workflow imports api", "workflow", module + "/api", "layer workflow imports layer api"},
		{"decision imports workflow", "decision", module + "/workflow", "layer decision imports layer workflow"},
		{"audit imports policy", "audit", module + "/policy", "layer audit imports layer policy"},
		{"internal imports audit", "internal/sqldb", module + "/audit", "layer internal imports layer audit"},
		{"policy imports its store", "policy", module + "/policy/policydb", "a core never imports its own adapters"},
		{"audit imports its store", "audit", module + "/audit/auditdb", "a core never imports its own adapters"},
		{"policy imports echo", "policy", "github.com/labstack/echo/v4", "policy depends on github.com/labstack/echo/v4"},
		{"audit depends on gorm", "audit", "gorm.io/gorm", "audit depends on gorm.io/gorm"},
		{"policy imports a Casbin adapter", "policy", "github.com/casbin/gorm-adapter/v3", "policy depends on github.com/casbin/gorm-adapter/v3"},
		{"policy uses a breaker", "policy", module + "/internal/breaker", "policy depends on " + module + "/internal/breaker"},
		{"audit uses go-resiliency", "audit", "github.com/eapache/go-resiliency/breaker", "audit depends on github.com/eapache/go-resiliency/breaker"},
		{"api imports the database package", "api", module + "/internal/sqldb", "api depends on " + module + "/internal/sqldb"},
		{"api imports Casbin", "api", "github.com/casbin/casbin/v3", "api imports github.com/casbin/casbin/v3"},
		{"the client imports the server", "client", module + "/policy", "client imports no project package"},
		{"a library imports a test package", "api", module + "/tests/e2e", "which is not a library"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			graph := maps.Clone(real)
			pkg := module + "/" + tc.pkg
			graph[pkg] = append(slices.Clone(graph[pkg]), tc.imp)
			if _, ok := graph[tc.imp]; !ok {
				graph[tc.imp] = nil
			}
			got := violations(graph)
			if !slices.ContainsFunc(got, func(v string) bool { return strings.Contains(v, tc.want) }) {
				t.Errorf("adding %s → %s: reports %q, want one containing %q", tc.pkg, tc.imp, got, tc.want)
			}
		})
	}
	t.Run("a package in no layer", func(t *testing.T) {
		graph := maps.Clone(real)
		graph[module+"/newpkg"] = nil
		if got := violations(graph); !slices.ContainsFunc(got, func(v string) bool { return strings.Contains(v, "newpkg: in no layer") }) {
			t.Errorf("reports %q, want newpkg in no layer", got)
		}
	})
}
