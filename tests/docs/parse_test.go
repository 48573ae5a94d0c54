package docs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	doc := "intro\n" +
		"```sh\n" +
		"# a remark\n" +
		"X=1\n" +
		"echo $X\n" +
		"# 1\n" +
		"\n" +
		"# another remark\n" +
		"false\n" +
		"# (exit status 1)\n" +
		"for i in 1 2; do\n" +
		"  echo $i\n" +
		"done\n" +
		"# 1\n" +
		"# 2\n" +
		"true   # trailing comment\n" +
		"```\n" +
		"```go\n" +
		"package main\n" +
		"```\n" +
		"<!-- example: skip needs a second machine -->\n" +
		"```sh\n" +
		"ssh elsewhere\n" +
		"```\n"
	got, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{
		{Line: 2, Steps: []Step{
			{Line: 4, Script: "X=1\necho $X", Expected: []string{"1"}},
			{Line: 9, Script: "false", Expected: []string{}, ExitStatus: 1},
			{Line: 11, Script: "for i in 1 2; do\n  echo $i\ndone", Expected: []string{"1", "2"}},
			{Line: 16, Script: "true   # trailing comment"},
		}},
		{Line: 22, Skip: "needs a second machine", Steps: []Step{{Line: 23, Script: "ssh elsewhere"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse:\n got %#v\nwant %#v", got, want)
	}
}

func TestParseRefusesBadDirectives(t *testing.T) {
	for _, doc := range []string{
		"<!-- example: skip -->\n```sh\nls\n```\n",
		"<!-- example: run twice -->\n```sh\nls\n```\n",
		"<!-- example: skip no block follows -->\ntext\n",
		"<!-- example: skip not a shell block -->\n```go\npackage x\n```\n",
		"```sh\nls\n",
	} {
		if _, err := Parse(doc); err == nil {
			t.Errorf("Parse(%q) accepted", doc)
		}
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		name     string
		expected []string
		output   string
		ok       bool
	}{
		{"same", []string{`{"result":true}`}, "{\"result\":true}\n", true},
		{"different", []string{`{"result":true}`}, "{\"result\":false}\n", false},
		{"ellipsis in a line", []string{`{"timestamp":"…"}`}, `{"timestamp":"2026-01-01T00:00:00Z"}`, true},
		{"uuid of another value", []string{"key: 199ccaf3-f756-4612-b341-85d6558dcf27"}, "key: 0b7e4f52-3c1d-4e8a-9f6b-2d5c8a1e7f30", true},
		{"uuid shape required", []string{"key: 199ccaf3-f756-4612-b341-85d6558dcf27"}, "key: none", false},
		{"time of another value", []string{"at 2026-11-28T13:39:26Z"}, "at 2027-01-02T03:04:05.123456Z", true},
		{"hex of the same length", []string{"id 22274ec3ea6c"}, "id 9f04a1c7d2be", true},
		{"hex of another length", []string{"id 22274ec3ea6c"}, "id 9f04a1c7d2be00", false},
		{"short numbers are literal", []string{"tenant 2 created"}, "tenant 3 created", false},
		{"aligned columns", []string{"ID  HANDLE"}, "ID      HANDLE", true},
		{"any lines", []string{"first", "… (more)", "last"}, "first\na\nb\nlast", true},
		{"any lines, none", []string{"first", "…", "last"}, "first\nlast", true},
		{"missing line", []string{"first", "second"}, "first", false},
		{"extra line", []string{"first"}, "first\nsecond", false},
		{"nothing shown", []string{}, "", true},
		{"nothing shown, something printed", []string{}, "x", false},
		{"carriage returns and trailing blanks", []string{"a"}, "a \r\n\n", true},
		{"regexp characters are literal", []string{"a.c (x)"}, "abc (x)", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			diff := Match(c.expected, c.output)
			if (diff == "") != c.ok {
				t.Fatalf("Match(%q, %q) = %q, want ok=%v", c.expected, c.output, diff, c.ok)
			}
		})
	}
}

// TestClientsShowTheQuickstartProgram keeps the Go program shown in
// docs/clients.md equal to the one the documents build and run.
func TestClientsShowTheQuickstartProgram(t *testing.T) {
	root := moduleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "clients.md"))
	if err != nil {
		t.Fatal(err)
	}
	program, err := os.ReadFile(filepath.Join(root, "client", "examples", "quickstart", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```go\n"+string(program)+"```\n") {
		t.Fatal("docs/clients.md does not show client/examples/quickstart/main.go as it is")
	}
}
