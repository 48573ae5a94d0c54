// Package benchgate decides whether benchmarks got slower than a committed
// baseline: the performance gate of CI. It reads two files of `go test
// -bench` output (several -count runs of each benchmark), compares the time
// per operation of each benchmark with the statistics of benchstat (the
// medians, and a Mann-Whitney U-test for significance), and reports a
// regression when a benchmark is both significantly slower and slower by
// more than the threshold.
package benchgate

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// Options tune a comparison.
type Options struct {
	// Threshold is the slowdown that fails (0.25: a median more than 25 %
	// above the baseline's).
	Threshold float64
	// Alpha is the significance level of the U-test (default 0.05).
	Alpha float64
	// Unit is the measurement compared (default "sec/op", which the
	// reader makes of "ns/op").
	Unit string
}

// Result is the comparison of one benchmark.
type Result struct {
	Name      string
	Base, New float64 // medians, in Unit
	BaseN     int     // runs in the baseline
	NewN      int     // runs measured now
	Ratio     float64 // New / Base
	P         float64 // the U-test's p-value
	// Regressed is set when New is significantly slower than Base by
	// more than the threshold.
	Regressed bool
	// Missing is set for a baseline benchmark that was not measured now
	// (renamed or deleted: the baseline must follow).
	Missing bool
}

// String renders the result as one line of the gate's report.
func (r Result) String() string {
	if r.Missing {
		return fmt.Sprintf("%-28s in the baseline but not measured: run it, or update the baseline", r.Name)
	}
	verdict := "ok"
	if r.Regressed {
		verdict = "SLOWER"
	}
	return fmt.Sprintf("%-28s base %s  now %s  %+6.1f%%  p=%.3f n=%d+%d  %s",
		r.Name, seconds(r.Base), seconds(r.New), (r.Ratio-1)*100, r.P, r.BaseN, r.NewN, verdict)
}

func seconds(s float64) string {
	switch {
	case s >= 1e-3:
		return fmt.Sprintf("%8.3f ms", s*1e3)
	case s >= 1e-6:
		return fmt.Sprintf("%8.3f µs", s*1e6)
	default:
		return fmt.Sprintf("%8.1f ns", s*1e9)
	}
}

// Failed reports whether any result fails the gate.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Regressed || r.Missing {
			return true
		}
	}
	return false
}

// Compare reads the baseline and the new measurements and compares every
// benchmark of the baseline, in name order. Benchmarks measured now but
// not in the baseline are ignored (a new benchmark joins the gate when the
// baseline is updated).
func Compare(base, now io.Reader, o Options) ([]Result, error) {
	if o.Threshold <= 0 {
		return nil, errors.New("benchgate: the threshold must be above 0")
	}
	if o.Alpha == 0 {
		o.Alpha = 0.05
	}
	if o.Unit == "" {
		o.Unit = "sec/op"
	}
	b, err := read(base, "baseline", o.Unit)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("benchgate: the baseline has no %s measurement", o.Unit)
	}
	n, err := read(now, "measurements", o.Unit)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(b))
	for name := range b {
		names = append(names, name)
	}
	sort.Strings(names)
	th := benchmath.DefaultThresholds
	th.CompareAlpha = o.Alpha
	out := make([]Result, 0, len(names))
	for _, name := range names {
		values, ok := n[name]
		if !ok {
			out = append(out, Result{Name: name, Missing: true, BaseN: len(b[name])})
			continue
		}
		bs, ns := benchmath.NewSample(b[name], &th), benchmath.NewSample(values, &th)
		bsum := benchmath.AssumeNothing.Summary(bs, 0.95)
		nsum := benchmath.AssumeNothing.Summary(ns, 0.95)
		cmp := benchmath.AssumeNothing.Compare(bs, ns)
		r := Result{Name: name, Base: bsum.Center, New: nsum.Center, BaseN: len(bs.Values), NewN: len(ns.Values), P: cmp.P}
		if r.Base > 0 {
			r.Ratio = r.New / r.Base
		}
		r.Regressed = r.Ratio > 1+o.Threshold && cmp.P < o.Alpha
		out = append(out, r)
	}
	return out, nil
}

// procs is the -GOMAXPROCS suffix of a benchmark name.
var procs = regexp.MustCompile(`-\d+$`)

// read collects each benchmark's values of unit, by name without the
// Benchmark prefix and the GOMAXPROCS suffix.
func read(r io.Reader, what, unit string) (map[string][]float64, error) {
	out := map[string][]float64{}
	br := benchfmt.NewReader(r, what)
	for br.Scan() {
		switch rec := br.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, fmt.Errorf("benchgate: %s: %w", what, rec)
		case *benchfmt.Result:
			v, ok := rec.Value(unit)
			if !ok {
				continue
			}
			name := procs.ReplaceAllString(strings.TrimPrefix(rec.Name.String(), "Benchmark"), "")
			out[name] = append(out[name], v)
		}
	}
	if err := br.Err(); err != nil {
		return nil, fmt.Errorf("benchgate: %s: %w", what, err)
	}
	return out, nil
}
