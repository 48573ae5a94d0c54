package config

import (
	"errors"
	"strconv"
	"strings"
)

// sizeUnits are the units ParseSize accepts (binary multiples only: a
// "MB" would be ambiguous).
var sizeUnits = map[string]int64{"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}

// ParseSize parses a size: a whole number followed by a unit, B, KiB, MiB
// or GiB (case-insensitive, optionally separated by a space), such as
// "512MiB" or "2 GiB".
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return 0, errors.New("must be a size such as 512MiB or 2GiB (units B, KiB, MiB, GiB)")
	}
	unit, ok := sizeUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, errors.New("must be a size such as 512MiB or 2GiB (units B, KiB, MiB, GiB)")
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n > (1<<62)/unit {
		return 0, errors.New("is too large")
	}
	return n * unit, nil
}
