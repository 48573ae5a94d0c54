package benchsuite

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ourway/auth/cmd/internal/dataset"
	"github.com/ourway/auth/policy"
)

func TestLinkByID(t *testing.T) {
	page := `<nav id="nav"><a href="/console/roles">Roles</a></nav>
<a id="roles-next" href="/console/matrix?perms_after=&amp;roles_after=role-1044">Next roles</a>
<a href="/console/matrix?x=1" id="perms-next">Next permissions</a>
<a id="audit-next">no target</a>`
	cases := []struct {
		id     string
		want   string
		wantOK bool
	}{
		{"roles-next", "/console/matrix?perms_after=&roles_after=role-1044", true},
		{"perms-next", "/console/matrix?x=1", true},
		{"audit-next", "", false},
		{"members-next", "", false},
		{"roles", "", false},
	}
	for _, tc := range cases {
		got, ok := linkByID([]byte(page), tc.id)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("linkByID(%q) = %q, %v; want %q, %v", tc.id, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestCSRFToken(t *testing.T) {
	cases := []struct {
		name, page string
		want       string
		wantOK     bool
	}{
		{"token", `<head><meta name="csrf-token" content="a1&#43;b2"></head>`, "a1+b2", true},
		{"no session", `<head><title>Sign in</title></head>`, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := csrfToken([]byte(tc.page))
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("csrfToken = %q, %v; want %q, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestConsoleExtras checks the rules added to the console's tenant: they
// parse as policy files of at most consoleImportRules rules, add no
// membership the bulk has, and make the counts the report states.
func TestConsoleExtras(t *testing.T) {
	tenant, err := dataset.Generate(dataset.Shape{Users: 6000, Roles: 1300, Permissions: 100, Grants: 2600, Memberships: 12_000}, 17)
	if err != nil {
		t.Fatal(err)
	}
	x := newConsoleExtras(tenant)
	members, parents := 0, 0
	seen := map[string]bool{}
	for i, f := range x.files {
		pf, err := policy.ParsePolicyCSV(strings.NewReader(f))
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		if len(pf.Rules) > consoleImportRules {
			t.Errorf("file %d has %d rules, want at most %d", i, len(pf.Rules), consoleImportRules)
		}
		for _, r := range pf.Rules {
			if r.Ptype != "g" || len(r.Fields) != 3 {
				t.Fatalf("rule %v: want g, MEMBER, role:ROLE, DOMAIN", r)
			}
			key := r.Fields[0] + " " + r.Fields[1]
			if seen[key] {
				t.Errorf("rule %s twice", key)
			}
			seen[key] = true
			if strings.HasPrefix(r.Fields[0], "role:") {
				parents++
				continue
			}
			members++
			u, err1 := strconv.Atoi(strings.TrimPrefix(r.Fields[0], "user-"))
			role, err2 := strconv.Atoi(strings.TrimPrefix(r.Fields[1], "role:role-"))
			if err1 != nil || err2 != nil {
				t.Fatalf("rule %v: not a generated user and role", r)
			}
			if hasRole(tenant, u, role) {
				t.Errorf("%s is in the bulk already", key)
			}
		}
	}
	bigs := 0
	for _, n := range consoleBigRoles {
		bigs += n
	}
	if members != x.members || parents != x.parents {
		t.Errorf("%d memberships and %d parents in the files, the counts say %d and %d", members, parents, x.members, x.parents)
	}
	if members < bigs || members > bigs+2 {
		t.Errorf("%d memberships added, want the big roles' %d and at most user-0's 2", members, bigs)
	}
	if want := 1000 + 100 + 1 + 10; parents != want {
		t.Errorf("%d role parents, want %d", parents, want)
	}
	if !seen["user-0 role:role-100"] && !hasRole(tenant, 0, 100) {
		t.Error("user-0 is not in role-100")
	}
	if x.biggest < consoleBigRoles[0] {
		t.Errorf("biggest role %d, want at least %d", x.biggest, consoleBigRoles[0])
	}
}

func hasRole(t *dataset.Tenant, u, r int) bool {
	for _, x := range t.UserRoles[u] {
		if int(x) == r {
			return true
		}
	}
	return false
}
