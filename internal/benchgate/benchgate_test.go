package benchgate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestCompare(t *testing.T) {
	cases := []struct {
		now      string
		failed   bool
		verdicts map[string]string // name → "ok", "slower" or "missing"
		ratios   map[string]float64
	}{
		{"base.txt", false, map[string]string{"Gate/check": "ok", "Gate/write": "ok"}, map[string]float64{"Gate/check": 1, "Gate/write": 1}},
		// 40 % slower on check (fails), 10 % on write (under the threshold);
		// another GOMAXPROCS suffix still matches.
		{"check-slower.txt", true, map[string]string{"Gate/check": "slower", "Gate/write": "ok"}, map[string]float64{"Gate/check": 1.4, "Gate/write": 1.1}},
		{"faster.txt", false, map[string]string{"Gate/check": "ok", "Gate/write": "ok"}, map[string]float64{"Gate/check": 0.7}},
		// A higher median whose runs overlap the baseline's is noise.
		{"noisy.txt", false, map[string]string{"Gate/check": "ok"}, nil},
		// A benchmark of the baseline that was not run fails the gate.
		{"missing.txt", true, map[string]string{"Gate/check": "ok", "Gate/write": "missing"}, nil},
	}
	for _, c := range cases {
		t.Run(c.now, func(t *testing.T) {
			rs, err := Compare(open(t, "base.txt"), open(t, c.now), Options{Threshold: 0.25})
			if err != nil {
				t.Fatal(err)
			}
			if got := Failed(rs); got != c.failed {
				t.Errorf("Failed = %v, want %v: %v", got, c.failed, rs)
			}
			byName := map[string]Result{}
			for _, r := range rs {
				byName[r.Name] = r
			}
			for name, want := range c.verdicts {
				r, ok := byName[name]
				if !ok {
					t.Fatalf("no result for %s in %v", name, rs)
				}
				got := "ok"
				switch {
				case r.Missing:
					got = "missing"
				case r.Regressed:
					got = "slower"
				}
				if got != want {
					t.Errorf("%s: %s, want %s (%v)", name, got, want, r)
				}
			}
			for name, want := range c.ratios {
				if got := byName[name].Ratio; got < want-0.02 || got > want+0.02 {
					t.Errorf("%s: ratio %.3f, want %.2f", name, got, want)
				}
			}
		})
	}
}

func TestCompareErrors(t *testing.T) {
	if _, err := Compare(open(t, "base.txt"), open(t, "base.txt"), Options{}); err == nil {
		t.Error("a zero threshold was accepted")
	}
	_, err := Compare(strings.NewReader("PASS\n"), open(t, "base.txt"), Options{Threshold: 0.25})
	if err == nil || !strings.Contains(err.Error(), "no sec/op") {
		t.Errorf("an empty baseline: %v", err)
	}
}

func TestResultString(t *testing.T) {
	rs, err := Compare(open(t, "base.txt"), open(t, "check-slower.txt"), Options{Threshold: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	line := rs[0].String()
	for _, want := range []string{"Gate/check", "10.025 µs", "14.035 µs", "+40.0%", "SLOWER"} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %q", line, want)
		}
	}
}
