// Package ratelimit parses rate-limit specifications written in the
// Flask-Limiter syntax used by the configuration ("1000 per hour",
// "10/minute", several joined by ";").
package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limit is a number of requests allowed per period.
type Limit struct {
	Count  int
	Period time.Duration
}

// String renders the limit in the canonical "N per unit" form, or
// "N per M units" for a multiple of a unit, which ParseLimits reads back.
func (l Limit) String() string {
	for i := len(units) - 1; i >= 0; i-- {
		u := units[i]
		if l.Period > 0 && l.Period%u.d == 0 {
			if m := l.Period / u.d; m > 1 {
				return fmt.Sprintf("%d per %d %ss", l.Count, m, u.name)
			}
			return fmt.Sprintf("%d per %s", l.Count, u.name)
		}
	}
	return fmt.Sprintf("%d per %s", l.Count, l.Period)
}

var units = []struct {
	name string
	d    time.Duration
}{
	{"second", time.Second},
	{"minute", time.Minute},
	{"hour", time.Hour},
	{"day", 24 * time.Hour},
}

// maxCount bounds a single limit; larger numbers are almost surely typos.
const maxCount = 1_000_000_000

// ParseLimits parses one or more limits joined by ";" (or ","). Accepted
// forms: "N per unit", "N/unit" and "N per M units", where unit is second,
// minute, hour or day (singular or plural).
func ParseLimits(s string) ([]Limit, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("must not be empty")
	}
	var out []Limit
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' }) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		l, err := parseOne(part)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, errors.New("must not be empty")
	}
	return out, nil
}

func parseOne(s string) (Limit, error) {
	bad := fmt.Errorf("%q is not a limit such as \"100 per minute\" or \"10/second\"", s)
	var countStr, rest string
	if i := strings.Index(s, "/"); i >= 0 {
		countStr, rest = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
	} else {
		f := strings.Fields(s)
		if len(f) < 3 || strings.ToLower(f[1]) != "per" {
			return Limit{}, bad
		}
		countStr, rest = f[0], strings.Join(f[2:], " ")
	}
	n, err := strconv.Atoi(countStr)
	if err != nil || n < 1 || n > maxCount {
		return Limit{}, bad
	}
	mult := 1
	f := strings.Fields(strings.ToLower(rest))
	switch len(f) {
	case 1:
	case 2:
		m, err := strconv.Atoi(f[0])
		if err != nil || m < 1 || m > 1000 {
			return Limit{}, bad
		}
		mult, f = m, f[1:]
	default:
		return Limit{}, bad
	}
	unit := strings.TrimSuffix(f[0], "s")
	for _, u := range units {
		if u.name == unit {
			return Limit{Count: n, Period: time.Duration(mult) * u.d}, nil
		}
	}
	return Limit{}, bad
}
