package policy

// Name classes (whole string; no trailing newline is admitted), checked
// byte by byte: a check runs on every request, and a table lookup is several
// times cheaper than the equivalent regular expressions
// \A[A-Za-z0-9_.@+-]{1,64}\z (user), \A[A-Za-z0-9_-]{1,64}\z (role),
// \A[A-Za-z0-9_-]{1,128}\z (permission) and \A[A-Za-z0-9_*-]{1,128}\z
// (a grant under a wildcard model).
var (
	userChars       = charClass("_.@+-")
	roleChars       = charClass("_-")
	permissionChars = roleChars
	patternChars    = charClass("_*-")
)

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

// ValidPermission reports whether s is a valid permission (or workflow) name:
// 1-128 characters from letters, digits, _ and -.
func ValidPermission(s string) bool { return validName(s, 128, permissionChars) }

// ValidGrant reports whether s may be granted under a model: a permission
// name, or, when the model matches permissions by pattern, a name that may
// also contain the wildcard *.
func (s *Service) ValidGrant(name string) bool {
	if s.model.wildcards {
		return validName(name, 128, patternChars)
	}
	return ValidPermission(name)
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

func checkPermission(p string) error {
	if !ValidPermission(p) {
		return &NameError{Kind: "permission", Value: p}
	}
	return nil
}
