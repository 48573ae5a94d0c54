package config

import (
	"errors"
	"fmt"
)

// Error is a configuration error that names the offending setting.
type Error struct {
	// Setting is the environment variable of the setting, or its YAML key
	// path when it has no variable ("server.read_timeout").
	Setting string
	// Key is the YAML key path of the setting ("" for one read only from
	// the environment).
	Key string
	// File is the configuration file the value came from, or the file
	// with the problem when Setting is FileVariable; "" when the value came
	// from the environment or the built-in defaults.
	File string
	// Value is the offending value ("" when it is not shown: secrets, and
	// URLs that may carry a password).
	Value  string
	Reason string
}

// Error names the setting (its key in the file when the value came from
// one), the value unless hidden, and the reason. A problem of the file
// itself (its YAML, a key it should not have) is named by the file and the
// key path: "auth.yaml (AUTH_CONFIG): server.prot: unknown key (…)".
func (e *Error) Error() string {
	name := e.Setting
	switch {
	case e.File != "" && e.Setting == FileVariable:
		// A problem of the file: name it (and the variable naming it),
		// and the key path.
		name = e.File + " (" + FileVariable + ")"
		if e.Key != "" {
			name += ": " + e.Key
		}
	case e.File != "" && e.Key != "":
		// The value came from the file: name its key there (and the
		// variable that would override it).
		name = e.File + ": " + e.Key
	}
	s := "invalid configuration: " + name
	if e.Value != "" {
		s += fmt.Sprintf("=%q", e.Value)
	}
	if e.File != "" && e.Key != "" && e.Setting != e.Key && e.Setting != FileVariable {
		s += " (" + e.Setting + ")"
	}
	return s + ": " + e.Reason
}

// FieldError is what a section's Validate reports about one of its
// fields, named by its Go name (or a dotted path of Go names for a field
// of a nested section). Load and Validate turn it into an *Error naming the
// field's environment variable or YAML key.
//
// Reason may name other fields of the same section in braces, as in
// "is required with {JWKSURL}": they are replaced by those fields'
// environment variables (or YAML keys), so that a variable's name is
// written only in its struct tag.
type FieldError struct {
	Field  string
	Value  string
	Reason string
}

// Error names the field by its Go name (Load names it by its variable).
func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Reason
	}
	return fmt.Sprintf("%s=%q: %s", e.Field, e.Value, e.Reason)
}

// Invalid returns the error a section's Validate reports about field:
// value (shown in the message; pass "" to hide it) is refused for reason.
func Invalid(field, value, reason string) error {
	return &FieldError{Field: field, Value: value, Reason: reason}
}

// Validator is a settings section: Validate checks it, fills the fields it
// derives from the others (a parsed list, a file's contents), and returns
// every problem it finds (errors.Join of several Invalid errors).
type Validator interface {
	Validate() error
}

// Warner is a settings section that points out settings that are valid
// but probably not what was meant (a value that another setting makes
// unused). Warnings returns Invalid errors, as Validate does; Warnings (the
// function) names their settings.
type Warner interface {
	Warnings() []error
}

// flatten returns the errors joined in err, in order.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// join returns nil, the one error, or all of them joined.
func join(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}
