package gobench_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ourway/auth/internal/gobench"
)

func parseFile(t *testing.T, name string) gobench.Output {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := gobench.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParse(t *testing.T) {
	cases := []struct {
		file    string
		name    string
		procs   int
		n       int64
		metrics map[string]float64
		logHas  string // a fragment of the benchmark's log ("" for none)
	}{
		{"policy.txt", "BenchmarkHasPermission/grants/10", 2, 1547000,
			map[string]float64{"ns/op": 548.4, "B/op": 16, "allocs/op": 1}, "2166 bytes per rule"},
		{"policy.txt", "BenchmarkHasPermission/tenants/10000", 2, 98917,
			map[string]float64{"ns/op": 5539, "B/op": 47, "allocs/op": 1}, "38.9 KB per tenant"},
		{"policy.txt", "BenchmarkWrite/postgres", 2, 364,
			map[string]float64{"ns/op": 1474114, "B/op": 35670, "allocs/op": 450}, ""},
		{"replica.txt", "BenchmarkReplicaPropagation", 2, 200,
			map[string]float64{"ns/op": 4802845, "after-ack-p50-ms": 0.2498, "after-ack-p99-ms": 5.380,
				"p50-ms": 3.897, "p99-ms": 17.26, "write-p99-ms": 13.59}, "200 changes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := parseFile(t, tc.file)
			if out.Failed {
				t.Errorf("Failed = true for a passing run")
			}
			b, ok := out.Get(tc.name)
			if !ok {
				t.Fatalf("Get(%q) found nothing", tc.name)
			}
			if b.Procs != tc.procs || b.N != tc.n {
				t.Errorf("procs, N = %d, %d; want %d, %d", b.Procs, b.N, tc.procs, tc.n)
			}
			if len(b.Metrics) != len(tc.metrics) {
				t.Errorf("metrics = %v, want %v", b.Metrics, tc.metrics)
			}
			for unit, want := range tc.metrics {
				if got := b.Metrics[unit]; got != want {
					t.Errorf("%s = %v, want %v", unit, got, want)
				}
			}
			joined := strings.Join(b.Log, "\n")
			if tc.logHas == "" && joined != "" || !strings.Contains(joined, tc.logHas) {
				t.Errorf("log = %q, want it to hold %q", joined, tc.logHas)
			}
		})
	}
	if got := len(parseFile(t, "policy.txt").Benchmarks); got != 8 {
		t.Errorf("policy.txt: %d benchmarks, want 8", got)
	}
}

func TestParseOddLines(t *testing.T) {
	cases := []struct {
		name       string
		in         string
		benchmarks int
		failed     bool
		wantErr    bool
	}{
		{"a parent line without figures", "BenchmarkA\nBenchmarkA/b-2 \t 10\t 5 ns/op\nPASS\n", 1, false, false},
		{"a name without a procs suffix", "BenchmarkA/b \t 10\t 5 ns/op\n", 1, false, false},
		{"a failed run", "BenchmarkA-2 \t 10\t 5 ns/op\n--- FAIL: BenchmarkB\n    x_test.go:1: boom\nFAIL\nexit status 1\n", 1, true, false},
		{"a value that is no number", "BenchmarkA-2 \t 10\t five ns/op\n", 0, false, true},
		{"no benchmarks", "PASS\nok  \tpkg\t0.1s\n", 0, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := gobench.Parse(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("Parse error = %v, want an error: %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if len(out.Benchmarks) != tc.benchmarks || out.Failed != tc.failed {
				t.Errorf("Parse = %d benchmarks, failed %v; want %d, %v", len(out.Benchmarks), out.Failed, tc.benchmarks, tc.failed)
			}
		})
	}
	out, _ := gobench.Parse(strings.NewReader("BenchmarkA/b-2 \t 10\t 5 ns/op\n"))
	if b, _ := out.Get("BenchmarkA/b"); b.Procs != 2 || b.Name != "BenchmarkA/b" {
		t.Errorf("Get = %+v, want name BenchmarkA/b and procs 2", b)
	}
}
