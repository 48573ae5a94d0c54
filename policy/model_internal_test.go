package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ourway/auth"
)

func TestParseModel(t *testing.T) {
	for _, tc := range []struct {
		file      string // in testdata/; "" is the built-in model.conf
		wantErr   string // a substring of the error; "" for success
		fast      bool
		wildcards bool
		funcs     string // the pattern functions found, sorted
	}{
		{file: "", fast: true},
		{file: "reordered.conf", fast: true},
		{file: "keymatch.conf", wildcards: true, funcs: "keyMatch"},
		{file: "keymatch2.conf", wildcards: true, funcs: "keyMatch2"},
		{file: "keymatch3.conf", wildcards: true, funcs: "keyMatch3"},
		{file: "keymatch4.conf", wildcards: true, funcs: "keyMatch4"},
		{file: "keymatch5.conf", wildcards: true, funcs: "keyMatch5"},
		{file: "globmatch.conf", wildcards: true, funcs: "globMatch"},
		{file: "regexmatch.conf", wildcards: true, funcs: "regexMatch"},
		{file: "two_patterns.conf", wildcards: true, funcs: "globMatch,keyMatch2"},
		{file: "keymatch_subject.conf"},
		{file: "superuser.conf"},
		{file: "swapped_operands.conf"},
		{file: "two_role_definitions.conf"},
		{file: "broken_syntax.conf", wantErr: "model.conf"},
		{file: "missing_matchers.conf", wantErr: "matchers"},
		{file: "broken_matcher.conf", wantErr: "parenthesis"},
		{file: "unknown_function.conf", wantErr: "fooMatch"},
		{file: "unknown_field.conf", wantErr: "r_act"},
		{file: "bad_effect.conf", wantErr: "effect"},
		{file: "wrong_request.conf", wantErr: "request_definition"},
		{file: "wrong_policy.conf", wantErr: "policy_definition"},
		{file: "no_domain_roles.conf", wantErr: "role_definition"},
	} {
		name := tc.file
		text := auth.DefaultModel
		if name == "" {
			name = "model.conf"
		} else {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			text = string(b)
		}
		t.Run(name, func(t *testing.T) {
			info, err := ParseModel(text)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseModel succeeded (fast=%v), want an error containing %q", info.fast, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "model.conf") || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q, want one naming model.conf and containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseModel: %v", err)
			}
			if info.fast != tc.fast || info.wildcards != tc.wildcards {
				t.Errorf("fast=%v wildcards=%v, want fast=%v wildcards=%v", info.fast, info.wildcards, tc.fast, tc.wildcards)
			}
			if got := strings.Join(info.perm.funcs, ","); got != tc.funcs {
				t.Errorf("pattern functions [%s], want [%s]", got, tc.funcs)
			}
			if info.text != text {
				t.Errorf("info.text is not the model text")
			}
		})
	}
}

// New refuses a model it cannot serve with ParseModel's error.
func TestNewRefusesModel(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "wrong_request.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := New(nil, string(b), Options{}); err == nil || s != nil {
		t.Errorf("New with a sub, obj, act model = %v, %v; want an error", s, err)
	}
}

// Options are clamped: MaxRoleDepth never exceeds what Casbin follows.
func TestNewOptionDefaults(t *testing.T) {
	for _, tc := range []struct{ in, want int }{{0, 8}, {-1, 8}, {1, 1}, {9, 9}, {10, 9}, {100, 9}} {
		s, err := New(nil, auth.DefaultModel, Options{MaxRoleDepth: tc.in})
		if err != nil {
			t.Fatal(err)
		}
		if s.opts.MaxRoleDepth != tc.want {
			t.Errorf("MaxRoleDepth %d -> %d, want %d", tc.in, s.opts.MaxRoleDepth, tc.want)
		}
		if s.opts.IdleTimeout <= 0 || s.opts.Recorder == nil || s.log == nil {
			t.Errorf("defaults not applied: %+v", s.opts)
		}
	}
}

// Permission names per model: the default rule stays the v1 rule; a
// pattern model admits the characters its functions' patterns need, '*'
// only in grants, and only grants that are valid patterns.
func TestValidGrant(t *testing.T) {
	services := map[string]*Service{}
	for _, f := range []string{"", "keymatch.conf", "keymatch2.conf", "keymatch3.conf", "keymatch5.conf",
		"globmatch.conf", "regexmatch.conf", "keymatch_subject.conf"} {
		text := auth.DefaultModel
		if f != "" {
			b, err := os.ReadFile(filepath.Join("testdata", f))
			if err != nil {
				t.Fatal(err)
			}
			text = string(b)
		}
		s, err := New(nil, text, Options{})
		if err != nil {
			t.Fatal(err)
		}
		services[f] = s
	}
	for _, tc := range []struct {
		model        string
		name         string
		grant, check bool
	}{
		// The default model: the v1 rule, for grants and checks alike.
		{"", "orders", true, true},
		{"", "orders*", false, false},
		{"", "*", false, false},
		{"", "orders/*", false, false},
		{"", "a.b", false, false},
		{"", "a:b", false, false},
		{"", "", false, false},
		{"", strings.Repeat("x", 128), true, true},
		{"", strings.Repeat("x", 129), false, false},
		{"", "read\n", false, false},
		{"keymatch_subject.conf", "a.b", false, false},
		// keyMatch: paths and *.
		{"keymatch.conf", "orders", true, true},
		{"keymatch.conf", "orders*", true, false},
		{"keymatch.conf", "*", true, false},
		{"keymatch.conf", "orders/*", true, false},
		{"keymatch.conf", "/reports/q3", true, true},
		{"keymatch.conf", "a.b:c{d}", true, true},
		{"keymatch.conf", "a b", false, false},
		{"keymatch.conf", "a?b", false, false},
		{"keymatch.conf", "a,b", false, false},
		{"keymatch.conf", "", false, false},
		{"keymatch.conf", strings.Repeat("x", 129), false, false},
		{"keymatch.conf", "read\n", false, false},
		// keyMatch2: ":id" parameters; a bare * is no valid pattern.
		{"keymatch2.conf", "/reports/:id", true, true},
		{"keymatch2.conf", "/reports/*", true, false},
		{"keymatch2.conf", "*", true, false}, // "^*$": valid, matches no name
		{"keymatch2.conf", "/a/**", false, false},
		{"keymatch3.conf", "/reports/{id}/x", true, true},
		// keyMatch5: a query string on the checked name.
		{"keymatch5.conf", "/reports/{id}", true, true},
		{"keymatch5.conf", "/reports/q3?a=1&b=2", true, true},
		{"keymatch.conf", "/reports/q3?a=1", false, false},
		// globMatch: ? [] {a,b}, and only well-formed globs.
		{"globmatch.conf", "/r/{a,b}/[!x]?", true, true},
		{"globmatch.conf", "/r/**", true, false},
		{"globmatch.conf", "/r/[a", false, true},
		// regexMatch: any printable character but space, valid regexps.
		{"regexmatch.conf", `^/reports/(q[1-4]|all)\.csv$`, true, true},
		{"regexmatch.conf", "^/reports/.*$", true, false},
		{"regexmatch.conf", "/reports/(", false, true},
		{"regexmatch.conf", "a b", false, false},
		{"regexmatch.conf", "\x7f", false, false},
		{"regexmatch.conf", "é", false, false},
	} {
		s := services[tc.model]
		if got := s.ValidGrant(tc.name); got != tc.grant {
			t.Errorf("%s: ValidGrant(%q) = %v, want %v", tc.model, tc.name, got, tc.grant)
		}
		if got := s.ValidCheck(tc.name); got != tc.check {
			t.Errorf("%s: ValidCheck(%q) = %v, want %v", tc.model, tc.name, got, tc.check)
		}
	}
}

// A pattern model's name errors state its rule; the default model's do
// not (the API words them as in v1).
func TestPermissionRuleText(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "keymatch2.conf"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(nil, string(b), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ne *NameError
	if err := s.checkCheck("/a b"); !errors.As(err, &ne) || !strings.Contains(ne.Rule, "keyMatch2") ||
		!strings.Contains(ne.Rule, "- . / : _ { }") {
		t.Errorf("check error %v (rule %q), want the keyMatch2 rule", err, ne.Rule)
	}
	if err := s.checkGrant("/a/**"); !errors.As(err, &ne) || !strings.Contains(ne.Rule, "not a valid keyMatch2 pattern") {
		t.Errorf("grant error %v, want it to say the pattern is invalid", err)
	}
	plain, err := New(nil, auth.DefaultModel, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.checkGrant("a/b"); !errors.As(err, &ne) || ne.Rule != "" {
		t.Errorf("default model: error %v with rule %q, want no rule", err, ne.Rule)
	}
}
