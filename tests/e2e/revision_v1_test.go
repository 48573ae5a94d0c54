package e2e

import (
	"path/filepath"
	"strconv"
	"testing"
)

// TestV1WritesStateTheirRevision: every v1 write that reaches the policy
// answers with X-Auth-Revision (the body is the original project's, to the
// byte), the revisions follow one another, a read carries none, and the
// change feed lists the changes at those revisions.
func TestV1WritesStateTheirRevision(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3")))
	key := newKey(t)
	c := s.client(key)
	for i, w := range []struct {
		method, path string
		result       bool
	}{
		{"POST", "/api/role/clerks", true},
		{"POST", "/api/permission/clerks/file", true},
		{"POST", "/api/membership/ann/clerks", true},
		{"POST", "/api/membership/ann/ghosts", false}, // no such role: a revision all the same
		{"DELETE", "/api/membership/ann/clerks", true},
		{"DELETE", "/api/permission/clerks/file", true},
	} {
		r := c.call(t, w.method, w.path)
		expect(t, r, 200, res(strconv.FormatBool(w.result)))
		if got, want := r.header.Get("X-Auth-Revision"), strconv.Itoa(i+1); got != want {
			t.Errorf("%s %s: X-Auth-Revision %q, want %q", w.method, w.path, got, want)
		}
	}
	if r := c.get(t, "/api/has_permission/ann/file"); r.header.Get("X-Auth-Revision") != "" {
		t.Errorf("%s: a v1 read carries X-Auth-Revision %q", r, r.header.Get("X-Auth-Revision"))
	}
	items, latest, err := s.feedAll(key, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, strconv.FormatInt(it.Revision, 10)+" "+it.Op+" "+it.Role+" "+it.User+it.Permission)
	}
	sameList(t, "change feed of the v1 writes", got, []string{
		"1 create_role clerks ", "2 grant clerks file", "3 add_member clerks ann", "5 remove_member clerks ann",
		"6 revoke clerks file"})
	if latest != 6 {
		t.Errorf("feed revision %d, want 6 (the last write's)", latest)
	}
}
