package config

import (
	"log/slog"
	"strconv"
)

// Secret is a string that never appears in logs.
type Secret string

// LogValue implements slog.LogValuer so that a Secret logs as REDACTED.
func (s Secret) LogValue() slog.Value {
	if s == "" {
		return slog.StringValue("")
	}
	return slog.StringValue("REDACTED")
}

// String hides the value from fmt as well.
func (s Secret) String() string { return s.LogValue().String() }

// GoString hides the value from %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText hides the value from encoders (JSON, YAML) that would
// otherwise write the string itself.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret value itself.
func (s Secret) Reveal() string { return string(s) }
