// Package gobench reads the output of `go test -bench`: each benchmark's
// name, iteration count and metrics (ns/op, B/op, allocs/op and any metric
// reported with b.ReportMetric), with the lines it logged.
package gobench

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Benchmark is one result line and what the benchmark logged.
type Benchmark struct {
	// Name is the full name without the -GOMAXPROCS suffix, as in
	// "BenchmarkHasPermission/tenants/100".
	Name string `json:"name"`
	// Procs is the GOMAXPROCS suffix (1 when there is none).
	Procs int `json:"procs"`
	// N is the iteration count.
	N int64 `json:"n"`
	// Metrics maps units ("ns/op", "B/op", "p99-ms", …) to values.
	Metrics map[string]float64 `json:"metrics"`
	// Log holds the lines the benchmark logged (b.Log), trimmed; the lines
	// of a benchmark come after its result line, under "--- BENCH: name".
	Log []string `json:"log,omitempty"`
}

// Output is the parsed output of a run.
type Output struct {
	Benchmarks []Benchmark
	// Failed is true when the run reported FAIL.
	Failed bool
}

// Get returns the benchmark of that name (without the -N suffix).
func (o Output) Get(name string) (Benchmark, bool) {
	for _, b := range o.Benchmarks {
		if b.Name == name {
			return b, true
		}
	}
	return Benchmark{}, false
}

// Parse reads go test output.
func Parse(r io.Reader) (Output, error) {
	var out Output
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var logTo *[]string // the lines after "--- BENCH:" go here
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Benchmark"):
			logTo = nil
			b, ok, err := parseResult(line)
			if err != nil {
				return out, err
			}
			if ok {
				out.Benchmarks = append(out.Benchmarks, b)
			}
		case strings.HasPrefix(trimmed, "--- BENCH: "):
			name, _ := splitProcs(strings.TrimPrefix(trimmed, "--- BENCH: "))
			logTo = nil
			for i := range out.Benchmarks {
				if out.Benchmarks[i].Name == name {
					logTo = &out.Benchmarks[i].Log
				}
			}
		case strings.HasPrefix(trimmed, "--- FAIL: ") || trimmed == "FAIL" || strings.HasPrefix(trimmed, "FAIL\t"):
			out.Failed = true
			logTo = nil
		case strings.HasPrefix(line, "    ") && logTo != nil:
			*logTo = append(*logTo, trimmed)
		default:
			logTo = nil
		}
	}
	return out, sc.Err()
}

// splitProcs splits "name-4" into "name" and 4; a name without a numeric
// suffix has 1.
func splitProcs(s string) (string, int) {
	if i := strings.LastIndexByte(s, '-'); i > 0 {
		if p, err := strconv.Atoi(s[i+1:]); err == nil && p > 0 {
			return s[:i], p
		}
	}
	return s, 1
}

// parseResult reads "BenchmarkX-2  1000  123 ns/op  4 B/op …"; ok is false
// for a line that only names a benchmark (a parent, or the name printed
// before a benchmark's own logging).
func parseResult(line string) (Benchmark, bool, error) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 {
		return Benchmark{}, false, nil
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return Benchmark{}, false, nil
	}
	b := Benchmark{N: n, Metrics: map[string]float64{}}
	b.Name, b.Procs = splitProcs(f[0])
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Benchmark{}, false, fmt.Errorf("gobench: %q: value %q: %w", line, f[i], err)
		}
		b.Metrics[f[i+1]] = v
	}
	return b, true, nil
}
