package metrics

import "testing"

func TestMethodLabel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"GET", "GET"}, {"HEAD", "HEAD"}, {"POST", "POST"}, {"PUT", "PUT"}, {"DELETE", "DELETE"},
		{"PATCH", "PATCH"}, {"OPTIONS", "OPTIONS"}, {"CONNECT", "CONNECT"}, {"TRACE", "TRACE"},
		{"get", "OTHER"}, {"M1", "OTHER"}, {"PROPFIND", "OTHER"}, {"", "OTHER"}, {"GET ", "OTHER"},
	} {
		if got := MethodLabel(tc.in); got != tc.want {
			t.Errorf("MethodLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCodeLabel(t *testing.T) {
	for _, tc := range []struct {
		in   int
		want string
	}{
		{100, "100"}, {200, "200"}, {405, "405"}, {599, "599"},
		{0, "other"}, {99, "other"}, {600, "other"}, {-1, "other"}, {1000, "other"},
	} {
		if got := CodeLabel(tc.in); got != tc.want {
			t.Errorf("CodeLabel(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
