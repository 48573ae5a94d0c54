package policy

import (
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
	}{
		{file: "", fast: true},
		{file: "reordered.conf", fast: true},
		{file: "keymatch.conf", wildcards: true},
		{file: "globmatch.conf", wildcards: true},
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

func TestValidGrant(t *testing.T) {
	keyMatch, err := os.ReadFile(filepath.Join("testdata", "keymatch.conf"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := New(nil, auth.DefaultModel, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wild, err := New(nil, string(keyMatch), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		plain, wild bool
	}{
		{"orders", true, true},
		{"orders*", false, true},
		{"*", false, true},
		{"orders/*", false, false},
		{"a.b", false, false},
		{"", false, false},
		{strings.Repeat("x", 128), true, true},
		{strings.Repeat("x", 129), false, false},
		{"read\n", false, false},
	} {
		if got := plain.ValidGrant(tc.name); got != tc.plain {
			t.Errorf("default model: ValidGrant(%q) = %v, want %v", tc.name, got, tc.plain)
		}
		if got := wild.ValidGrant(tc.name); got != tc.wild {
			t.Errorf("keyMatch model: ValidGrant(%q) = %v, want %v", tc.name, got, tc.wild)
		}
	}
}
