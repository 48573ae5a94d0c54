package policy

import "regexp"

// Name patterns (whole string; no trailing newline is admitted).
var (
	userRE       = regexp.MustCompile(`\A[A-Za-z0-9_.@+-]{1,64}\z`)
	roleRE       = regexp.MustCompile(`\A[A-Za-z0-9_-]{1,64}\z`)
	permissionRE = regexp.MustCompile(`\A[A-Za-z0-9_-]{1,128}\z`)
	patternRE    = regexp.MustCompile(`\A[A-Za-z0-9_*-]{1,128}\z`)
)

// ValidUser reports whether s is a valid user name: 1-64 characters from
// letters, digits and _ . @ + -.
func ValidUser(s string) bool { return userRE.MatchString(s) }

// ValidRole reports whether s is a valid role name: 1-64 characters from
// letters, digits, _ and -.
func ValidRole(s string) bool { return roleRE.MatchString(s) }

// ValidPermission reports whether s is a valid permission (or workflow) name:
// 1-128 characters from letters, digits, _ and -.
func ValidPermission(s string) bool { return permissionRE.MatchString(s) }

// ValidGrant reports whether s may be granted under a model: a permission
// name, or, when the model matches permissions by pattern, a name that may
// also contain the wildcard *.
func (s *Service) ValidGrant(name string) bool {
	if s.model.wildcards {
		return patternRE.MatchString(name)
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
