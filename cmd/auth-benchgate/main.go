// Command auth-benchgate is the performance gate of CI: it compares `go
// test -bench` output with the committed baseline and exits 1 when a
// benchmark is significantly slower by more than the threshold (see
// internal/benchgate, and `make bench-gate`).
//
//	auth-benchgate -base tests/bench/testdata/gate-baseline.txt -new gate.txt
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ourway/auth/internal/benchgate"
)

func main() {
	base := flag.String("base", "tests/bench/testdata/gate-baseline.txt", "the committed baseline (go test -bench output)")
	now := flag.String("new", "", "the measurements to check (go test -bench output)")
	threshold := flag.Float64("threshold", 0.25, "the slowdown that fails (0.25: 25 %)")
	flag.Parse()
	if err := run(os.Stdout, *base, *now, *threshold); err != nil {
		fmt.Fprintln(os.Stderr, "auth-benchgate:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, basePath, nowPath string, threshold float64) error {
	if nowPath == "" {
		return fmt.Errorf("-new is required")
	}
	base, err := os.Open(basePath)
	if err != nil {
		return err
	}
	defer base.Close()
	now, err := os.Open(nowPath)
	if err != nil {
		return err
	}
	defer now.Close()
	rs, err := benchgate.Compare(base, now, benchgate.Options{Threshold: threshold})
	if err != nil {
		return err
	}
	for _, r := range rs {
		fmt.Fprintln(w, r)
	}
	if benchgate.Failed(rs) {
		return fmt.Errorf("slower than the baseline by more than %.0f %% (significant at p < 0.05)", threshold*100)
	}
	fmt.Fprintf(w, "performance gate passed: nothing more than %.0f %% slower than the baseline\n", threshold*100)
	return nil
}
