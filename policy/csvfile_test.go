package policy_test

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/casbin/casbin/v3/model"
	"github.com/casbin/casbin/v3/persist"

	"github.com/ourway/auth"
	"github.com/ourway/auth/policy"
)

// quotingCases are the rules of testdata/policycsv/quoting.csv, in order.
var quotingCases = []struct {
	name   string
	ptype  string
	fields []string
}{
	{"plain", "p", []string{"role:admin", "1", "read"}},
	{"path and colon need no quotes", "p", []string{"role:admin", "1", "/reports/:id"}},
	{"comma is quoted", "p", []string{"role:admin", "1", "/r/{a,b}"}},
	{"quotes are doubled", "p", []string{"role:admin", "1", `say "hi"`}},
	{"comma and quotes", "p", []string{"role:admin", "1", `a,"b",c`}},
	{"leading and trailing spaces are quoted", "p", []string{"role:admin", "1", "  padded "}},
	{"hash inside a line is data", "p", []string{"role:admin", "1", "#hash"}},
	{"regexp characters need no quotes", "p", []string{"role:admin", "1", `^/x(y|z)\.csv$`}},
	{"membership", "g", []string{"alice", "role:admin", "1"}},
	{"role link", "g", []string{"role:admin", "role:viewer", "1"}},
}

// ruleLines returns the rule lines (not comments) of a file in testdata.
func ruleLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "policycsv", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// casbinReads is what Casbin's file adapter reads from one line.
func casbinReads(t testing.TB, line string) (string, []string) {
	t.Helper()
	m, err := model.NewModelFromString(auth.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	if err := persist.LoadPolicyLine(line, m); err != nil {
		t.Fatalf("Casbin cannot read %q: %v", line, err)
	}
	for _, sec := range []string{"p", "g"} {
		for ptype, ast := range m[sec] {
			if len(ast.Policy) == 1 {
				return ptype, ast.Policy[0]
			}
		}
	}
	t.Fatalf("Casbin read no rule from %q", line)
	return "", nil
}

// EncodeRule writes each rule exactly as the golden file has it; Casbin's
// own reader and ParsePolicyCSV both read the line back as the fields.
func TestPolicyCSVQuoting(t *testing.T) {
	lines := ruleLines(t, "quoting.csv")
	if len(lines) != len(quotingCases) {
		t.Fatalf("quoting.csv has %d rule lines, the table %d", len(lines), len(quotingCases))
	}
	for i, tc := range quotingCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := policy.EncodeRule(tc.ptype, tc.fields)
			if err != nil || got != lines[i] {
				t.Errorf("EncodeRule = %q, %v; want %q", got, err, lines[i])
			}
			ptype, fields := casbinReads(t, lines[i])
			if ptype != tc.ptype || !reflect.DeepEqual(fields, tc.fields) {
				t.Errorf("Casbin reads %q as %s %q, want %s %q", lines[i], ptype, fields, tc.ptype, tc.fields)
			}
			f, err := policy.ParsePolicyCSV(strings.NewReader(lines[i]))
			if err != nil || len(f.Rules) != 1 || f.Rules[0].Ptype != tc.ptype || !reflect.DeepEqual(f.Rules[0].Fields, tc.fields) {
				t.Errorf("ParsePolicyCSV(%q) = %+v, %v", lines[i], f, err)
			}
		})
	}
	// The whole file round-trips through WriteCSV.
	var in policy.PolicyFile
	for _, tc := range quotingCases {
		in.Rules = append(in.Rules, policy.FileRule{Ptype: tc.ptype, Fields: tc.fields})
	}
	in.Roles = []string{"admin", "viewer"}
	var buf bytes.Buffer
	if err := in.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	out, err := policy.ParsePolicyCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range out.Rules {
		out.Rules[i].Line = 0
	}
	if !reflect.DeepEqual(out.Roles, in.Roles) || !reflect.DeepEqual(out.Rules, in.Rules) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

// A hand-written file reads as Casbin would read it, with its line numbers
// and role declarations.
func TestParsePolicyCSVLoose(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "policycsv", "loose.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := policy.ParsePolicyCSV(f)
	if err != nil {
		t.Fatal(err)
	}
	want := policy.PolicyFile{Roles: []string{"auditor"}, Rules: []policy.FileRule{
		{Line: 5, Ptype: "p", Fields: []string{"role:admin", "1", "read"}},
		{Line: 6, Ptype: "p", Fields: []string{"role:admin", "1", "write"}},
		{Line: 7, Ptype: "g", Fields: []string{"alice", "role:admin", "1"}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// Syntax errors name their lines, every one of them.
func TestParsePolicyCSVErrors(t *testing.T) {
	in := "p, role:a, 1, ok\np, role:a, 1, \"open\np, a\"b, 1, x\np\n#\n\"\", x, y\n"
	_, err := policy.ParsePolicyCSV(strings.NewReader(in))
	var ie *policy.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v, want an *ImportError", err)
	}
	var lines []int
	for _, p := range ie.Problems {
		lines = append(lines, p.Line)
	}
	if !reflect.DeepEqual(lines, []int{2, 3, 4, 6}) {
		t.Errorf("problems on lines %v, want [2 3 4 6]:\n%v", lines, err)
	}
	// A field with a line break cannot be written.
	if _, err := policy.EncodeRule("p", []string{"a\nb"}); err == nil {
		t.Errorf("EncodeRule wrote a line break")
	}
}

// FuzzParsePolicyCSV: the parser never panics, and every rule it reads
// encodes into a line that reads back as the same rule, by it and by
// Casbin.
func FuzzParsePolicyCSV(f *testing.F) {
	for _, name := range []string{"quoting.csv", "loose.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata", "policycsv", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("p, \"a\"\"b\", 1, x\n# role: r\ng,,,\n")
	f.Fuzz(func(t *testing.T, in string) {
		file, err := policy.ParsePolicyCSV(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, r := range file.Rules {
			line, err := policy.EncodeRule(r.Ptype, r.Fields)
			if err != nil {
				continue // a type or field the encoder refuses (a line break)
			}
			back, err := policy.ParsePolicyCSV(strings.NewReader(line))
			if err != nil || len(back.Rules) != 1 || back.Rules[0].Ptype != r.Ptype || !reflect.DeepEqual(back.Rules[0].Fields, r.Fields) {
				t.Fatalf("%q (from %q) reads back as %+v, %v", line, r.Fields, back, err)
			}
			if r.Ptype == "p" && len(r.Fields) == 3 {
				if ptype, fields := casbinReads(t, line); ptype != "p" || !reflect.DeepEqual(fields, r.Fields) {
					t.Fatalf("Casbin reads %q as %q, want %q", line, fields, r.Fields)
				}
			}
		}
	})
}
