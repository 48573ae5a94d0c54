package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// KeyHash identifies a tenant by the SHA-256 of its canonical client key.
// The client key itself is a credential and is never stored.
type KeyHash string

// ErrInvalidClientKey is returned for a client key that is not a UUID4.
var ErrInvalidClientKey = errors.New("policy: client key is not a valid UUID4")

// ParseClientKey checks that s is a UUID of version 4 and RFC 4122 variant in
// its canonical 36-character form (either case) and returns its hash.
func ParseClientKey(s string) (KeyHash, error) {
	if len(s) != 36 {
		return "", ErrInvalidClientKey
	}
	k := strings.ToLower(s)
	for i := 0; i < 36; i++ {
		c := k[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", ErrInvalidClientKey
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return "", ErrInvalidClientKey
			}
		}
	}
	if k[14] != '4' {
		return "", ErrInvalidClientKey
	}
	switch k[19] {
	case '8', '9', 'a', 'b':
	default:
		return "", ErrInvalidClientKey
	}
	sum := sha256.Sum256([]byte(k))
	return KeyHash(hex.EncodeToString(sum[:])), nil
}
