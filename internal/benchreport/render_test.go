package benchreport

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ourway/auth/tests/docs"
)

var update = flag.Bool("update", false, "rewrite testdata/report.md from testdata/report.json")

func fixture(t *testing.T) *Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func render(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.Render(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRenderGolden renders the figures of a run (testdata/report.json) and
// compares the Markdown with testdata/report.md (-update rewrites it).
func TestRenderGolden(t *testing.T) {
	got := render(t, fixture(t))
	golden := filepath.Join("testdata", "report.md")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("report.md differs at line %d:\n got: %s\nwant: %s\n(run go test -update to accept)", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("report.md differs in length: %d lines, want %d (run go test -update to accept)", len(gl), len(wl))
	}
}

// TestRenderCommandsAreSkipped checks that the docs test (tests/docs)
// leaves every command block of the report alone: they run for minutes.
func TestRenderCommandsAreSkipped(t *testing.T) {
	for _, r := range []*Report{fixture(t), {NotesPath: "benchmarks-notes.md"}} {
		blocks, err := docs.Parse(render(t, r))
		if err != nil {
			t.Fatal(err)
		}
		if len(blocks) == 0 {
			t.Fatal("no command block found")
		}
		for _, b := range blocks {
			if b.Skip == "" {
				t.Errorf("the sh block at line %d would be run by the docs test", b.Line)
			}
		}
	}
}

// TestRenderNotes checks that the notes are included verbatim, and that
// without notes the report names the file without linking to it.
func TestRenderNotes(t *testing.T) {
	r := fixture(t)
	if got := render(t, r); !strings.Contains(got, "\n"+strings.TrimSpace(r.Notes)+"\n") {
		t.Errorf("the notes %q are not in the report verbatim", r.Notes)
	}
	r.Notes = ""
	got := render(t, r)
	if strings.Contains(got, "](benchmarks-notes.md)") || !strings.Contains(got, "`benchmarks-notes.md`") {
		t.Error("without notes the report must name benchmarks-notes.md without a link")
	}
}

// TestRenderShowsErrors checks that errors are counted in bold and their
// samples listed.
func TestRenderShowsErrors(t *testing.T) {
	r := fixture(t)
	r.HTTP[0].Probe.Half.Errors = 3
	r.HTTP[0].Probe.Half.ErrorSamples = []string{"GET /x: status 500"}
	got := render(t, r)
	if !strings.Contains(got, "| **3** of ") || !strings.Contains(got, "`GET /x: status 500`") {
		t.Error("errors are not shown in the report")
	}
}

// TestRenderFeedWakeCountsPollFirst checks that the wake-ups whose poll
// answered before the write's answer are stated, and that the consistency
// section shows the in-process figures without an HTTP probe.
func TestRenderFeedWakeCountsPollFirst(t *testing.T) {
	r := fixture(t)
	for i, b := range r.Replica.Benchmarks {
		if b.Name == FeedWakeBenchmark {
			r.Replica.Benchmarks[i].Metrics["poll-first"] = 2
		}
	}
	r.Consistency = nil
	got := render(t, r)
	if !strings.Contains(got, "B's answer arrived before A's in 2 of 30 wake-ups (counted as 0).") {
		t.Error("the wake-ups whose poll answered first are not stated")
	}
	if !strings.Contains(got, "| `at_least:<current>` |") || strings.Contains(got, "Over HTTP: `GET /api/v2/check") {
		t.Error("without an HTTP probe the consistency section must show the in-process figures alone")
	}
}
