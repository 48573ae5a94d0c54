// Package secret judges whether configured key material is strong enough:
// the audit key, the field-encryption keys and the JWT secret share one rule.
package secret

import "strings"

// MinLen is the shortest secret accepted, in bytes.
const MinLen = 32

// Thresholds of the low-entropy patterns Weak refuses. Random material of
// MinLen bytes or more (hex, base64, a passphrase generator's output) meets
// none of them but with a vanishing probability.
const (
	// minDistinct is the fewest distinct bytes a secret must hold.
	minDistinct = 8
	// maxRun is the longest run of bytes each one above or below the last
	// ("01234567", "hgfedcba") a secret may hold.
	maxRun = 7
)

// placeholders are words that mark a secret copied from an example.
var placeholders = []string{"changeme", "change-me", "change_me", "secret", "password", "example", "default", "placeholder"}

// Weak reports whether s is shorter than MinLen, contains an obvious
// placeholder word (in any case), or follows a low-entropy pattern: a short
// sequence repeated ("abab…", "0123456789abcdef0123456789abcdef"), fewer than
// eight distinct bytes, or an ascending or descending run of more than seven
// bytes ("0123456789…", "abcdefgh…").
func Weak(s string) bool {
	if len(s) < MinLen {
		return true
	}
	lower := strings.ToLower(s)
	for _, w := range placeholders {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return repeated(s) || distinct(s) < minDistinct || longestRun(s) > maxRun
}

// repeated reports whether s is a shorter string repeated (a whole number
// of times, or with the last copy cut short).
func repeated(s string) bool {
	for p := 1; p <= len(s)/2; p++ {
		if s[p:] == s[:len(s)-p] {
			return true
		}
	}
	return false
}

// distinct counts the distinct bytes of s.
func distinct(s string) int {
	var seen [256]bool
	n := 0
	for i := 0; i < len(s); i++ {
		if !seen[s[i]] {
			seen[s[i]] = true
			n++
		}
	}
	return n
}

// longestRun is the length of the longest stretch of s in which each byte
// is one above the previous one, or each is one below it.
func longestRun(s string) int {
	best, up, down := 1, 1, 1
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == s[i-1]+1:
			up, down = up+1, 1
		case s[i]+1 == s[i-1]:
			up, down = 1, down+1
		default:
			up, down = 1, 1
		}
		best = max(best, up, down)
	}
	return best
}
