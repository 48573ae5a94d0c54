package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/casbin/casbin/v3/model"
	"github.com/casbin/govaluate"
)

// Name classes (whole string; no trailing newline is admitted), checked
// byte by byte: a check runs on every request, and a table lookup is several
// times cheaper than the equivalent regular expressions
// \A[A-Za-z0-9_.@+-]{1,64}\z (user), \A[A-Za-z0-9_-]{1,64}\z (role) and
// \A[A-Za-z0-9_-]{1,128}\z (permission). A model that matches permissions
// with a pattern function widens the permission class (see patternFuncs).
var (
	userChars       = charClass("_.@+-")
	roleChars       = charClass("_-")
	permissionChars = roleChars
)

// maxPermission is the length limit of a permission name or pattern.
const maxPermission = 128

// charClass is the set of ASCII letters and digits and the bytes of extra.
func charClass(extra string) *[256]bool {
	var c [256]bool
	for b := '0'; b <= '9'; b++ {
		c[b] = true
	}
	for b := 'a'; b <= 'z'; b++ {
		c[b] = true
		c[b-'a'+'A'] = true
	}
	for i := 0; i < len(extra); i++ {
		c[extra[i]] = true
	}
	return &c
}

// validName reports whether s has 1 to limit bytes, all in class.
func validName(s string, limit int, class *[256]bool) bool {
	if len(s) == 0 || len(s) > limit {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !class[s[i]] {
			return false
		}
	}
	return true
}

// ValidUser reports whether s is a valid user name: 1-64 characters from
// letters, digits and _ . @ + -.
func ValidUser(s string) bool { return validName(s, 64, userChars) }

// ValidRole reports whether s is a valid role name: 1-64 characters from
// letters, digits, _ and -.
func ValidRole(s string) bool { return validName(s, 64, roleChars) }

// ValidPermission reports whether s is a valid permission (or workflow) name
// under the default model: 1-128 characters from letters, digits, _ and -.
// A pattern model admits more (Service.ValidGrant, Service.ValidCheck).
func ValidPermission(s string) bool { return validName(s, maxPermission, permissionChars) }

// patternBase are the characters, beyond letters and digits, of a
// permission name under any pattern model: path separators, keyMatch2's
// ":id", keyMatch3/4/5's "{id}", dots, and the wildcard '*' (in grants).
const patternBase = "_-./:*{}"

// printable is every printable ASCII character but the space.
var printable = func() string {
	var b strings.Builder
	for c := byte('!'); c <= '~'; c++ {
		b.WriteByte(c)
	}
	return b.String()
}()

// patternFuncs are the Casbin functions that compare a permission (the
// request's object) with a granted pattern, and the characters their
// patterns need beyond patternBase.
var patternFuncs = map[string]string{
	"keyMatch":  "",
	"keyMatch2": "",
	"keyMatch3": "",
	"keyMatch4": "",
	// keyMatch5 ignores a query string of the checked name.
	"keyMatch5": "?=&",
	// Globs: ? [a-z] [!a] [^a] {a,b} (doublestar).
	"globMatch": "?[]!^,",
	// A regular expression may need any printable character.
	"regexMatch": printable,
}

// patternCall finds a pattern function called in a (space-free) matcher.
var patternCall = regexp.MustCompile(`(?:^|[^A-Za-z0-9_])(keyMatch[2-5]?|globMatch|regexMatch)\(`)

// objectArg finds the request's or the rule's object in an argument list.
var objectArg = regexp.MustCompile(`(?:^|[^A-Za-z0-9_])[rp]_obj(?:[^A-Za-z0-9_]|$)`)

// patternFunctions lists, sorted, the pattern functions the matcher applies
// to the permission (an argument names r.obj or p.obj).
func patternFunctions(matcher string) []string {
	var out []string
	for _, loc := range patternCall.FindAllStringSubmatchIndex(matcher, -1) {
		name := matcher[loc[2]:loc[3]]
		open := loc[1] // just after '('
		depth, end := 1, len(matcher)
		for i := open; i < len(matcher); i++ {
			switch matcher[i] {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				end = i
				break
			}
		}
		if objectArg.MatchString(matcher[open:end]) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// permissionRule is what the served model admits as a permission name: the
// default rule, or under a pattern model a wider class for checked names
// and the same class with '*' for granted patterns, which must also be
// valid patterns of every function the matcher uses on them.
type permissionRule struct {
	funcs        []string // the pattern functions; none: the default rule
	check, grant *[256]bool
	text         string // the rule in words, for errors
}

// newPermissionRule is the rule of a model whose matcher applies funcs to
// the permission.
func newPermissionRule(funcs []string) permissionRule {
	if len(funcs) == 0 {
		return permissionRule{check: permissionChars, grant: permissionChars}
	}
	extra := patternBase
	for _, f := range funcs {
		extra += patternFuncs[f]
	}
	grant := charClass(extra)
	check := charClass(strings.ReplaceAll(extra, "*", ""))
	check['*'] = false
	var chars string
	if slices.Contains(funcs, "regexMatch") {
		chars = "printable ASCII characters other than space and *"
	} else {
		var punct []string
		for c := byte('!'); c <= '~'; c++ {
			if check[c] && !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				punct = append(punct, string(c))
			}
		}
		chars = "letters, digits and " + strings.Join(punct, " ")
	}
	text := fmt.Sprintf("Under this model (%s) permission names must be 1-%d characters long and contain only %s; "+
		"a granted permission is a %s pattern and may also contain *", strings.Join(funcs, ", "), maxPermission, chars,
		strings.Join(funcs, "/"))
	return permissionRule{funcs: funcs, check: check, grant: grant, text: text}
}

// casbinFuncs are Casbin's built-in matching functions.
var casbinFuncs = func() map[string]govaluate.ExpressionFunction {
	fm := model.LoadFunctionMap()
	return fm.GetFunctions()
}()

// validPattern reports whether every pattern function accepts p as a
// pattern: Casbin compiles keyMatch2..5 and regexMatch patterns into
// regular expressions and panics (an Enforce error) on one that does not
// compile, and globMatch fails on a malformed glob; a grant that did either
// would break every decision of its tenant.
func (r permissionRule) validPattern(p string) error {
	for _, name := range r.funcs {
		if name == "globMatch" && !doublestar.ValidatePattern(p) {
			return fmt.Errorf("not a valid globMatch pattern")
		}
		if err := tryPattern(casbinFuncs[name], p); err != nil {
			return fmt.Errorf("not a valid %s pattern (%v)", name, err)
		}
	}
	return nil
}

// tryPattern runs a Casbin matching function on pattern p.
func tryPattern(fn func(args ...any) (any, error), p string) (err error) {
	if fn == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	_, err = fn("probe", p)
	return err
}

// ValidGrant reports whether name may be granted under the served model: a
// permission name, or, when the model matches permissions by pattern, a
// valid pattern of its functions (which may contain *).
func (s *Service) ValidGrant(name string) bool { return s.checkGrant(name) == nil }

// ValidCheck reports whether name may be checked (has_permission,
// which_users_can, …) under the served model: a permission name of the
// model's rule, without the wildcard *.
func (s *Service) ValidCheck(name string) bool { return s.checkCheck(name) == nil }

// checkGrant validates a permission to grant or revoke.
func (s *Service) checkGrant(p string) error {
	r := s.model.perm
	if !validName(p, maxPermission, r.grant) {
		return &NameError{Kind: "permission", Value: p, Rule: r.text}
	}
	if len(r.funcs) > 0 {
		if err := r.validPattern(p); err != nil {
			return &NameError{Kind: "permission", Value: p, Rule: "It is " + err.Error() + ". " + r.text}
		}
	}
	return nil
}

// checkCheck validates a permission that a question names.
func (s *Service) checkCheck(p string) error {
	r := s.model.perm
	if !validName(p, maxPermission, r.check) {
		return &NameError{Kind: "permission", Value: p, Rule: r.text}
	}
	return nil
}

func checkUser(u string) error {
	if !ValidUser(u) {
		return &NameError{Kind: "user", Value: u}
	}
	return nil
}

func checkRole(r string) error {
	if !ValidRole(r) {
		return &NameError{Kind: "role", Value: r}
	}
	return nil
}
