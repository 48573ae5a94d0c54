package benchreport

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Count writes n with a space between groups of three digits: 1 000 000.
func Count(n int) string {
	s := strconv.Itoa(n)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ' ')
		}
		out = append(out, s[i])
	}
	return neg + string(out)
}

// Rate writes a per-second rate as a whole number grouped by thousands
// (Count), with one decimal below 100.
func Rate(v float64) string {
	if v < 100 && v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return Count(int(math.Round(v)))
}

// Percent writes a share as a whole percentage: 0.523 is "52 %".
func Percent(v float64) string { return fmt.Sprintf("%.0f %%", v*100) }

// Ratio writes a ratio with two decimals: "1.35×".
func Ratio(v float64) string { return fmt.Sprintf("%.2f×", v) }

// Duration writes a latency with three significant digits in the unit
// that suits it: "812 µs", "4.12 ms", "41.2 ms", "1.23 s".
func Duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < time.Millisecond:
		return sig(float64(d)/float64(time.Microsecond)) + " µs"
	case d < time.Second:
		return sig(float64(d)/float64(time.Millisecond)) + " ms"
	default:
		return sig(d.Seconds()) + " s"
	}
}

// sig writes v (≥ 1) with three significant digits.
func sig(v float64) string {
	switch {
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}

// Bytes writes a size in binary units with three significant digits.
func Bytes(n int64) string {
	sign := ""
	if n < 0 {
		sign = "-"
	}
	v := float64(n)
	for _, u := range []string{"B", "KiB", "MiB", "GiB"} {
		if math.Abs(v) < 1024 || u == "GiB" {
			if u == "B" {
				return fmt.Sprintf("%d B", n)
			}
			return sign + sig(math.Abs(v)) + " " + u
		}
		v /= 1024
	}
	return ""
}
