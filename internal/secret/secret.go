// Package secret judges whether configured key material is strong enough:
// the audit key, the field-encryption keys and the JWT secret share one rule.
package secret

import "strings"

// MinLen is the shortest secret accepted, in bytes.
const MinLen = 32

// placeholders are words that mark a secret copied from an example.
var placeholders = []string{"changeme", "change-me", "change_me", "secret", "password", "example", "default", "placeholder"}

// Weak reports whether s is shorter than MinLen, is one repeated character,
// or contains an obvious placeholder word (in any case).
func Weak(s string) bool {
	if len(s) < MinLen {
		return true
	}
	if strings.Count(s, s[:1]) == len(s) {
		return true
	}
	lower := strings.ToLower(s)
	for _, w := range placeholders {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}
