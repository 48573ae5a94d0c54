package client_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// v2Model is a scripted API v2 in memory for one tenant: the routes the
// example programs use, with the documented shapes.
type v2Model struct {
	mu      sync.Mutex
	perms   map[string]map[string]bool // role → permissions
	parents map[string][]string        // role → parents
	members map[string]map[string]bool // role → users
	pages   int                        // member pages served
}

func newV2Fake(t *testing.T) (*httptest.Server, *v2Model) {
	t.Helper()
	m := &v2Model{perms: map[string]map[string]bool{}, parents: map[string][]string{}, members: map[string]map[string]bool{}}
	mux := http.NewServeMux()
	send := func(w http.ResponseWriter, code int, data any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "data": data, "message": "m", "success": true, "timestamp": "t"})
	}
	put := func(w http.ResponseWriter, created bool, data map[string]any) {
		data["created"] = created
		send(w, map[bool]int{true: 201, false: 200}[created], data)
	}
	missing := func(w http.ResponseWriter, role string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(404)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": 404, "details": map[string]any{"reason": "role_not_found", "role": role},
			"message": "Role does not exist.", "success": false, "timestamp": "t"})
	}
	mux.HandleFunc("PUT /api/v2/roles/{role}", func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		role := r.PathValue("role")
		_, ok := m.perms[role]
		if !ok {
			m.perms[role], m.members[role] = map[string]bool{}, map[string]bool{}
		}
		put(w, !ok, map[string]any{"name": role, "description": nil})
	})
	mux.HandleFunc("PUT /api/v2/roles/{role}/{kind}/{name}", func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		role, kind, name := r.PathValue("role"), r.PathValue("kind"), r.PathValue("name")
		if _, ok := m.perms[role]; !ok {
			missing(w, role)
			return
		}
		var created bool
		switch kind {
		case "permissions":
			created = !m.perms[role][name]
			m.perms[role][name] = true
			put(w, created, map[string]any{"role": role, "permission": name})
		case "members":
			created = !m.members[role][name]
			m.members[role][name] = true
			put(w, created, map[string]any{"role": role, "user": name})
		case "parents":
			created = !slices.Contains(m.parents[role], name)
			if created {
				m.parents[role] = append(m.parents[role], name)
			}
			put(w, created, map[string]any{"role": role, "parent": name})
		default:
			http.NotFound(w, r)
		}
	})
	mux.HandleFunc("GET /api/v2/roles/{role}/members", func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.pages++
		var users []string
		for u := range m.members[r.PathValue("role")] {
			users = append(users, u)
		}
		slices.Sort(users)
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit == 0 {
			limit = 100
		}
		start := 0
		if c := r.URL.Query().Get("cursor"); c != "" {
			after, _ := base64.RawURLEncoding.DecodeString(c)
			start, _ = slices.BinarySearch(users, string(after)+"\x00")
		}
		end := min(start+limit, len(users))
		items := []map[string]string{}
		for _, u := range users[start:end] {
			items = append(items, map[string]string{"user": u})
		}
		var next any
		if end < len(users) {
			next = base64.RawURLEncoding.EncodeToString([]byte(users[end-1]))
		}
		send(w, 200, map[string]any{"items": items, "next_cursor": next})
	})
	// path finds the path user → role → … → permission, or nil.
	path := func(user, perm string) []map[string]string {
		var walk func(role string, seen []string) []string
		walk = func(role string, seen []string) []string {
			seen = append(seen, role)
			if m.perms[role][perm] {
				return seen
			}
			for _, p := range m.parents[role] {
				if got := walk(p, slices.Clone(seen)); got != nil {
					return got
				}
			}
			return nil
		}
		var roles []string
		for role := range m.members {
			if m.members[role][user] {
				roles = append(roles, role)
			}
		}
		slices.Sort(roles)
		for _, role := range roles {
			if chain := walk(role, nil); chain != nil {
				out := []map[string]string{{"type": "user", "name": user}}
				for _, r := range chain {
					out = append(out, map[string]string{"type": "role", "name": r})
				}
				return append(out, map[string]string{"type": "permission", "name": perm})
			}
		}
		return nil
	}
	mux.HandleFunc("GET /api/v2/check", func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		q := r.URL.Query()
		p := path(q.Get("user"), q.Get("permission"))
		data := map[string]any{"user": q.Get("user"), "permission": q.Get("permission"), "allowed": p != nil}
		if q.Get("explain") == "true" {
			var rule any
			if p != nil {
				rule = []string{"role:" + p[len(p)-2]["name"], "domain", q.Get("permission")}
			}
			data["explanation"] = map[string]any{"path": p, "rule": rule}
		}
		send(w, 200, data)
	})
	mux.HandleFunc("POST /api/v2/check", func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		var req struct {
			Checks []struct{ User, Permission string } `json:"checks"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad body", 400)
			return
		}
		res := []map[string]any{}
		for _, c := range req.Checks {
			res = append(res, map[string]any{"user": c.User, "permission": c.Permission, "allowed": path(c.User, c.Permission) != nil})
		}
		send(w, 200, map[string]any{"results": res})
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s, m
}

// The Go example program against the scripted API v2 prints what the
// documentation shows, also when run a second time on the same tenant.
func TestV2ExampleProgramAgainstFake(t *testing.T) {
	s, m := newV2Fake(t)
	runV2Example(t, s.URL)
	if m.pages != 6 { // two runs, three pages of two members each
		t.Errorf("%d member pages served, want 6", m.pages)
	}
}

// The Python example against the same scripted API v2 prints the same.
func TestV2PythonExampleAgainstFake(t *testing.T) {
	python := findPython(t)
	s, _ := newV2Fake(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 2 {
		cmd := exec.CommandContext(ctx, python, filepath.Join(moduleDir, "clients", "python", "examples", "v2.py"), s.URL, randomKey())
		cmd.Env = append(cmd.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH="+filepath.Join(moduleDir, "clients", "python"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("v2.py: %v\n%s", err, out)
		}
		if string(out) != v2ExampleOutput {
			t.Fatalf("v2.py printed:\n%s\nwant:\n%s", out, v2ExampleOutput)
		}
	}
}
