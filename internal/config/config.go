// Package config reads settings into a struct of sections: the built-in
// YAML defaults, then the file named by AUTH_CONFIG, then environment
// variables (which win), and validates every section once, reporting all
// the problems it finds.
//
// The sections are declared by the packages that use them. A field's YAML
// key and environment variable are its struct tags, written once:
//
//	Port int `yaml:"port" env:"SERVER_PORT"`
//
// A field tagged yaml:"-" is not read from the file (secrets come from the
// environment only); env:"NAME,lower" lower-cases the variable's value. A
// struct field is a nested section (an anonymous one tagged yaml:",inline"
// shares its parent's keys). A section implements Validator; its Validate
// names fields by their Go names (Invalid), and Load reports them by their
// variable or key path.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// FileVariable names the variable that names the configuration file.
const FileVariable = "AUTH_CONFIG"

// Variable is one environment variable of the settings.
type Variable struct {
	// Name is the variable ("SERVER_PORT").
	Name string
	// Key is the YAML key path of the same setting ("server.port"), or ""
	// for a setting read only from the environment (a secret).
	Key string
}

// Variables lists the environment variables read into root (a struct or a
// pointer to one), FileVariable first, in the order the fields are declared.
func Variables(root any) []Variable {
	out := []Variable{{Name: FileVariable}}
	for _, f := range schemaOf(reflect.TypeOf(root)).fields {
		if f.env != "" {
			out = append(out, Variable{Name: f.env, Key: f.key})
		}
	}
	return out
}

// Load reads defaults (YAML), then the file named by FileVariable if it is
// set, then the environment through getenv, into root (a pointer to a
// struct), and validates every section. It returns the file it read ("" for
// none) and every problem found: one *Error, or several joined.
func Load(root any, defaults []byte, getenv func(string) string) (string, error) {
	v := reflect.ValueOf(root)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic("config.Load: root must be a pointer to a struct")
	}
	l := &loader{root: v.Elem(), schema: schemaOf(v.Type()), origin: map[string]string{}}
	if err := l.readYAML(defaults, ""); err != nil {
		return "", fmt.Errorf("built-in config.yaml: %w", err)
	}
	file, _ := lookup(getenv, FileVariable)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			l.errs = append(l.errs, &Error{Setting: FileVariable, Value: file, Reason: err.Error()})
		} else if err := l.readYAML(b, file); err != nil {
			l.errs = append(l.errs, err)
		}
	}
	l.readEnv(getenv)
	l.validate()
	return file, join(l.errs)
}

// Validate validates root (a pointer to a struct of sections) as Load
// does, without reading anything: every section's Validate, nested ones
// first, with their errors naming variables.
func Validate(root any) error {
	v := reflect.ValueOf(root)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic("config.Validate: root must be a pointer to a struct")
	}
	l := &loader{root: v.Elem(), schema: schemaOf(v.Type()), origin: map[string]string{}}
	l.validate()
	return join(l.errs)
}

// field is one setting: a leaf of the struct tree with a YAML key, an
// environment variable or both.
type field struct {
	index  []int
	goPath string // "Server.Port" (embedded sections' own names left out)
	key    string // "server.port"; "" when not read from the file
	env    string
	lower  bool
	secret bool
}

// section is a struct in the tree, validated if it is a Validator.
type section struct {
	index  []int
	goPath string
	key    string
}

type schema struct {
	fields   []field
	byKey    map[string]*field
	byGoPath map[string]*field
	prefixes map[string]bool // key paths of sections
	sections []section       // post-order: nested sections before their parent
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	secretType   = reflect.TypeOf(Secret(""))
)

func schemaOf(t reflect.Type) *schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	s := &schema{byKey: map[string]*field{}, byGoPath: map[string]*field{}, prefixes: map[string]bool{}}
	s.walk(t, nil, "", "", true)
	for i := range s.fields {
		f := &s.fields[i]
		s.byGoPath[f.goPath] = f
		if f.key != "" {
			s.byKey[f.key] = f
		}
	}
	return s
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	if name == "" {
		return prefix
	}
	return prefix + "." + name
}

func (s *schema) walk(t reflect.Type, index []int, goPath, key string, inFile bool) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		idx := append(append([]int(nil), index...), i)
		yname, yopts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		fileOK := inFile && yname != "-"
		env, eopts, _ := strings.Cut(sf.Tag.Get("env"), ",")
		if sf.Type.Kind() == reflect.Struct && sf.Type != durationType {
			if sf.Anonymous && yopts == "inline" {
				s.walk(sf.Type, idx, goPath, key, fileOK)
				s.sections = append(s.sections, section{index: idx, goPath: goPath, key: key})
				continue
			}
			if yname == "" {
				yname = strings.ToLower(sf.Name)
			}
			k := ""
			if fileOK {
				k = joinPath(key, yname)
				s.prefixes[k] = true
			}
			gp := joinPath(goPath, sf.Name)
			s.walk(sf.Type, idx, gp, k, fileOK)
			s.sections = append(s.sections, section{index: idx, goPath: gp, key: k})
			continue
		}
		if !fileOK && env == "" {
			continue // derived: filled by Validate
		}
		if yname == "" {
			yname = strings.ToLower(sf.Name)
		}
		f := field{index: idx, goPath: joinPath(goPath, sf.Name), env: env, lower: eopts == "lower"}
		if fileOK {
			f.key = joinPath(key, yname)
		}
		f.secret = sf.Type == secretType || (sf.Type.Kind() == reflect.Slice && sf.Type.Elem() == secretType)
		if !settable(sf.Type) {
			panic(fmt.Sprintf("config: %s has type %s, which cannot be read from text", f.goPath, sf.Type))
		}
		s.fields = append(s.fields, f)
	}
}

func settable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Int, reflect.Bool:
		return true
	case reflect.Int64:
		return t == durationType
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

type loader struct {
	root   reflect.Value
	schema *schema
	origin map[string]string // goPath -> the file it was last read from
	errs   []error
}

// name is how an error names f: its variable, else its key, else its Go path.
func (f *field) name() string {
	switch {
	case f.env != "":
		return f.env
	case f.key != "":
		return f.key
	}
	return f.goPath
}

// shown is v as an error may show it: secrets and values of variables
// that may carry a password (keys, URLs) are not shown.
func (f *field) shown(v string) string {
	if f.secret || strings.Contains(f.env, "KEY") || strings.Contains(f.env, "URL") {
		return ""
	}
	return v
}

func (l *loader) readYAML(b []byte, file string) error {
	where := file
	if where == "" {
		where = "built-in config.yaml"
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		reason := "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
		if file == "" {
			return errors.New(reason)
		}
		return &Error{Setting: FileVariable, File: where, Reason: reason}
	}
	if doc.Kind == 0 {
		return nil // empty
	}
	n := &doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	var errs []error
	l.readMapping(n, "", where, file, &errs)
	if file == "" && len(errs) > 0 {
		return join(errs)
	}
	l.errs = append(l.errs, errs...)
	return nil
}

// readMapping reads the mapping n found at the key path prefix of the
// file (where names it in errors; file is "" for the built-in defaults).
func (l *loader) readMapping(n *yaml.Node, prefix, where, file string, errs *[]error) {
	if n.Kind != yaml.MappingNode {
		e := &Error{Setting: FileVariable, File: where, Key: prefix}
		if prefix == "" {
			e.Reason = fmt.Sprintf("must be a mapping of sections (%s), not %s (line %d)", strings.Join(l.children(""), ", "), nodeKind(n), n.Line)
		} else {
			e.Reason = fmt.Sprintf("must be a mapping of keys (%s), not %s (line %d)", strings.Join(l.children(prefix), ", "), nodeKind(n), n.Line)
		}
		*errs = append(*errs, e)
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := joinPath(prefix, k.Value)
		if f, ok := l.schema.byKey[path]; ok {
			l.readLeaf(f, v, file, errs)
			continue
		}
		if l.schema.prefixes[path] {
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				continue
			}
			l.readMapping(v, path, where, file, errs)
			continue
		}
		*errs = append(*errs, &Error{Setting: FileVariable, File: where, Key: path, Reason: l.unknownKey(prefix, k)})
	}
}

// unknownKey is the reason given for the unknown key k of the mapping at
// prefix: its line, the nearest known key when one is close, and the
// known keys.
func (l *loader) unknownKey(prefix string, k *yaml.Node) string {
	known := l.children(prefix)
	var b strings.Builder
	fmt.Fprintf(&b, "unknown key (line %d).", k.Line)
	if near := nearest(k.Value, known); near != "" {
		fmt.Fprintf(&b, " Did you mean %s?", near)
	}
	what := "keys of " + prefix
	if prefix == "" {
		what = "sections"
	}
	fmt.Fprintf(&b, " Known %s: %s", what, strings.Join(known, ", "))
	return b.String()
}

// children lists the keys the file may have under the key path prefix
// ("" for the sections), in the order they are declared.
func (l *loader) children(prefix string) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range l.schema.fields {
		if f.key == "" {
			continue
		}
		rest := f.key
		if prefix != "" {
			var ok bool
			if rest, ok = strings.CutPrefix(f.key, prefix+"."); !ok {
				continue
			}
		}
		name, _, _ := strings.Cut(rest, ".")
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// nearest returns the key of known closest to s when it is a likely typo
// of it (at most two edits, fewer than half the letters), else "".
func nearest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(s), k); d < bestD && 2*d < len(k) {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes), with a
// transposition of two neighbours counted as one edit.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// nodeKind describes what a YAML node is, for errors.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a single value"
}

func (l *loader) readLeaf(f *field, n *yaml.Node, file string, errs *[]error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.ScalarNode {
		*errs = append(*errs, &Error{Setting: f.name(), Key: f.key, File: file,
			Reason: fmt.Sprintf("must be a single value, not %s (line %d)", nodeKind(n), n.Line)})
		return
	}
	if err := setText(l.root.FieldByIndex(f.index), n.Value); err != nil {
		*errs = append(*errs, &Error{Setting: f.name(), Key: f.key, File: file, Value: f.shown(n.Value),
			Reason: fmt.Sprintf("%s (line %d)", err, n.Line)})
		return
	}
	l.origin[f.goPath] = file
}

func (l *loader) readEnv(getenv func(string) string) {
	for i := range l.schema.fields {
		f := &l.schema.fields[i]
		if f.env == "" {
			continue
		}
		v, ok := lookup(getenv, f.env)
		if !ok {
			continue
		}
		if f.lower {
			v = strings.ToLower(v)
		}
		if err := setText(l.root.FieldByIndex(f.index), v); err != nil {
			l.errs = append(l.errs, &Error{Setting: f.env, Value: f.shown(v), Reason: err.Error()})
			continue
		}
		delete(l.origin, f.goPath)
	}
}

// lookup returns a variable's value and whether it is set and not blank.
func lookup(getenv func(string) string, name string) (string, bool) {
	v := strings.TrimSpace(getenv(name))
	return v, v != ""
}

func setText(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("must be a duration such as 30s or 10m")
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return errors.New("must be a whole number")
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Bool:
		switch strings.ToLower(s) {
		case "1", "true", "yes", "on":
			v.SetBool(true)
		case "0", "false", "no", "off":
			v.SetBool(false)
		default:
			return errors.New("must be true or false")
		}
	case v.Kind() == reflect.Slice:
		out := reflect.MakeSlice(v.Type(), 0, 1)
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = reflect.Append(out, reflect.ValueOf(part).Convert(v.Type().Elem()))
			}
		}
		if out.Len() == 0 {
			out = reflect.Zero(v.Type())
		}
		v.Set(out)
	}
	return nil
}

var (
	validatorType = reflect.TypeOf((*Validator)(nil)).Elem()
	warnerType    = reflect.TypeOf((*Warner)(nil)).Elem()
)

// Warnings returns what the sections of root (a pointer to a struct of
// sections, as Load filled it) warn about, each naming its setting by its
// variable: "POSTGRESQL_URL: is set but …".
func Warnings(root any) []string {
	v := reflect.ValueOf(root)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic("config.Warnings: root must be a pointer to a struct")
	}
	l := &loader{root: v.Elem(), schema: schemaOf(v.Type()), origin: map[string]string{}}
	var out []string
	for _, s := range append(append([]section(nil), l.schema.sections...), section{}) {
		sv := l.root
		if s.index != nil {
			sv = l.root.FieldByIndex(s.index)
		}
		if !sv.CanAddr() || !sv.Addr().Type().Implements(warnerType) || promotesMethod(sv.Type(), warnerType) {
			continue
		}
		for _, w := range sv.Addr().Interface().(Warner).Warnings() {
			e, ok := l.resolve(w, s).(*Error)
			if !ok {
				out = append(out, w.Error())
				continue
			}
			out = append(out, e.Setting+": "+e.Reason)
		}
	}
	return out
}

// validate calls every section's Validate, nested sections first and the
// root last, and collects their errors.
func (l *loader) validate() {
	for _, s := range l.schema.sections {
		l.validateOne(l.root.FieldByIndex(s.index), s)
	}
	l.validateOne(l.root, section{})
}

func (l *loader) validateOne(v reflect.Value, s section) {
	if !v.CanAddr() || !v.Addr().Type().Implements(validatorType) || promotesMethod(v.Type(), validatorType) {
		return
	}
	for _, err := range flatten(v.Addr().Interface().(Validator).Validate()) {
		l.errs = append(l.errs, l.resolve(err, s))
	}
}

// promotesMethod reports whether t's method of the interface iface
// (Validate, Warnings) is one promoted from an embedded section (which is
// asked on its own): a struct embedding sections declares no such method
// of its own.
func promotesMethod(t reflect.Type, iface reflect.Type) bool {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous && reflect.PointerTo(sf.Type).Implements(iface) {
			return true
		}
	}
	return false
}

// resolve turns a section's error into an *Error naming the variable (or
// the key in the file the value came from).
func (l *loader) resolve(err error, s section) error {
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		name := s.key
		if name == "" {
			name = s.goPath
		}
		return &Error{Setting: name, Reason: err.Error()}
	}
	reason := l.expand(fe.Reason, s.goPath)
	f, ok := l.schema.byGoPath[joinPath(s.goPath, fe.Field)]
	if !ok {
		return &Error{Setting: joinPath(s.goPath, fe.Field), Value: fe.Value, Reason: reason}
	}
	return &Error{Setting: f.name(), Key: f.key, File: l.origin[f.goPath], Value: fe.Value, Reason: reason}
}

// expand replaces {Field} in reason by the name of that field of the
// section at goPath.
func (l *loader) expand(reason, goPath string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(reason, '{')
		j := strings.IndexByte(reason[i+1:], '}')
		if i < 0 || j < 0 {
			b.WriteString(reason)
			return b.String()
		}
		j += i + 1
		ref := reason[i+1 : j]
		b.WriteString(reason[:i])
		if f, ok := l.schema.byGoPath[joinPath(goPath, ref)]; ok {
			b.WriteString(f.name())
		} else {
			b.WriteString(reason[i : j+1])
		}
		reason = reason[j+1:]
	}
}

// ExpandHome replaces a leading ~ of a path by the home directory.
func ExpandHome(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot expand ~: %w", err)
		}
		return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
	}
	return p, nil
}
