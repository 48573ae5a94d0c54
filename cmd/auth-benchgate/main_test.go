package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	data := filepath.Join("..", "..", "internal", "benchgate", "testdata")
	base := filepath.Join(data, "base.txt")
	cases := []struct {
		base, now string
		want      string // "" for success, else a part of the error
	}{
		{base, filepath.Join(data, "base.txt"), ""},
		{base, filepath.Join(data, "check-slower.txt"), "slower than the baseline by more than 25 %"},
		{base, filepath.Join(data, "missing.txt"), "slower than the baseline"},
		{base, "", "-new is required"},
		{filepath.Join(t.TempDir(), "none.txt"), base, "no such file"},
		{base, filepath.Join(t.TempDir(), "none.txt"), "no such file"},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.base)+"/"+filepath.Base(c.now), func(t *testing.T) {
			var out strings.Builder
			err := run(&out, c.base, c.now, 0.25)
			switch {
			case c.want == "" && (err != nil || !strings.Contains(out.String(), "performance gate passed")):
				t.Fatalf("run: %v\n%s", err, out.String())
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("run: %v, want an error saying %q", err, c.want)
			}
		})
	}
}
