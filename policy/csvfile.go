package policy

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PolicyFile is a tenant's policy as a Casbin policy file (CSV): its rules
// and, in the comment lines Casbin ignores ("# role: NAME"), its roles in
// creation order, so that roles that hold no rule survive a round trip.
type PolicyFile struct {
	// Header is written as comment lines before everything else (and is
	// not read back).
	Header []string
	// Roles are the declared roles, in order.
	Roles []string
	// Rules are the p and g lines, in order.
	Rules []FileRule
	// Version is the tenant's policy version when it was exported (not
	// written: the header says it in words).
	Version int64
}

// FileRule is one rule line of a policy file.
type FileRule struct {
	// Line is the 1-based line number it was read from (0 if not read).
	Line int
	// Ptype is the rule type: "p" or "g" for the rules this service keeps.
	Ptype string
	// Fields are the rule's values, the domain included (p: subject,
	// domain, permission; g: member, role, domain).
	Fields []string
}

// roleDirective starts a comment line that declares a role.
const roleDirective = "# role:"

// maxLineErrors bounds the problems one error reports.
const maxLineErrors = 20

// LineError is a problem of one line of a policy file.
type LineError struct {
	Line int
	Msg  string
}

func (e LineError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// ErrInvalidPolicy is matched by the error of a policy file that cannot be
// read or imported (an *ImportError).
var ErrInvalidPolicy = errors.New("policy: invalid policy file")

// ImportError lists the problems of a policy file, each with its line.
type ImportError struct {
	Problems []LineError
	// More counts the problems found beyond those listed.
	More int
}

func (e *ImportError) Error() string {
	var b strings.Builder
	b.WriteString("invalid policy file:")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n  … and %d more", e.More)
	}
	return b.String()
}

// Unwrap lets errors.Is(err, ErrInvalidPolicy) match.
func (e *ImportError) Unwrap() error { return ErrInvalidPolicy }

// problems collects LineErrors up to maxLineErrors.
type problems struct{ e ImportError }

func (p *problems) add(line int, format string, args ...any) {
	if len(p.e.Problems) == maxLineErrors {
		p.e.More++
		return
	}
	p.e.Problems = append(p.e.Problems, LineError{Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if len(p.e.Problems) == 0 {
		return nil
	}
	e := p.e
	return &e
}

// ParsePolicyCSV reads a Casbin policy file as Casbin's file adapter does:
// line by line, blank lines and lines starting with '#' skipped (but
// "# role: NAME" declares a role), each other line one CSV record with ','
// between fields, spaces after a comma ignored, and fields that hold a
// comma or a quote written in double quotes (a quote doubled inside). It
// checks the syntax only (see Service.ImportPolicy for the rest) and
// reports every bad line.
func ParsePolicyCSV(r io.Reader) (PolicyFile, error) {
	var f PolicyFile
	var errs problems
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, roleDirective):
			role := strings.TrimSpace(line[len(roleDirective):])
			if role == "" {
				errs.add(n, "a role declaration needs a role name")
				continue
			}
			f.Roles = append(f.Roles, role)
			continue
		case strings.HasPrefix(line, "#"):
			continue
		}
		fields, err := readRecord(line)
		if err != nil {
			errs.add(n, "%v", err)
			continue
		}
		f.Rules = append(f.Rules, FileRule{Line: n, Ptype: fields[0], Fields: fields[1:]})
	}
	if err := sc.Err(); err != nil {
		errs.add(n+1, "%v", err)
	}
	return f, errs.err()
}

// readRecord reads one line as one CSV record, as Casbin does.
func readRecord(line string) ([]string, error) {
	r := csv.NewReader(strings.NewReader(line))
	r.Comma = ','
	r.Comment = '#'
	r.TrimLeadingSpace = true
	fields, err := r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("column %d: %v", pe.Column, pe.Err)
		}
		return nil, err
	}
	if _, err := r.Read(); err != io.EOF {
		return nil, errors.New("more than one record on the line")
	}
	if len(fields) < 2 || fields[0] == "" {
		return nil, errors.New("a rule needs its type (p or g) and its fields")
	}
	return fields, nil
}

// WriteCSV writes f as a Casbin policy file: the header and role
// declarations as comments, then one line per rule, fields separated by
// ", " and quoted where Casbin's reader needs it.
func (f PolicyFile) WriteCSV(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, h := range f.Header {
		if strings.ContainsAny(h, "\r\n") {
			return errors.New("policy: a header line cannot hold a line break")
		}
		fmt.Fprintf(bw, "# %s\n", h)
	}
	for _, r := range f.Roles {
		if r == "" || strings.ContainsAny(r, "\r\n") || strings.TrimSpace(r) != r {
			return fmt.Errorf("policy: role %q cannot be declared in a policy file", r)
		}
		fmt.Fprintf(bw, "%s %s\n", roleDirective, r)
	}
	for _, r := range f.Rules {
		line, err := EncodeRule(r.Ptype, r.Fields)
		if err != nil {
			return err
		}
		bw.WriteString(line)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// EncodeRule writes one rule as a line of a Casbin policy file (without
// the line break).
func EncodeRule(ptype string, fields []string) (string, error) {
	var b strings.Builder
	for i, v := range append([]string{ptype}, fields...) {
		if strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("policy: a rule field cannot hold a line break: %q", v)
		}
		if i == 0 && (v == "" || quoteField(v) || strings.HasPrefix(v, "#")) {
			return "", fmt.Errorf("policy: %q is not a rule type", v)
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if quoteField(v) {
			b.WriteByte('"')
			b.WriteString(strings.ReplaceAll(v, `"`, `""`))
			b.WriteByte('"')
		} else {
			b.WriteString(v)
		}
	}
	return b.String(), nil
}

// quoteField reports whether a field must be quoted for Casbin's reader to
// read it back as it is: it holds a comma or a quote, is empty, or starts
// or ends with a space (the reader drops leading spaces, and the line's
// trailing ones).
func quoteField(v string) bool {
	return v == "" || strings.ContainsAny(v, `,"`) || strings.TrimSpace(v) != v
}
