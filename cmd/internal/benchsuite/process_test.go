package benchsuite

import "testing"

func TestParseVmRSS(t *testing.T) {
	cases := []struct {
		name    string
		status  string
		want    int64
		wantErr bool
	}{
		{"status file", "Name:\tauth-server\nVmPeak:\t 2000 kB\nVmRSS:\t   43344 kB\nRssAnon:\t 30000 kB\n", 43344 << 10, false},
		{"no VmRSS line", "Name:\tx\nVmPeak:\t 2000 kB\n", 0, true},
		{"bad number", "VmRSS:\t lots kB\n", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVmRSS([]byte(tc.status))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseVmRSS = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseStatusKB(t *testing.T) {
	status := []byte("Name:\tauth-server\nVmPeak:\t 2000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   43344 kB\n")
	cases := []struct {
		field   string
		want    int64
		wantErr bool
	}{
		{"VmHWM:", 51200 << 10, false},
		{"VmRSS:", 43344 << 10, false},
		{"VmSwap:", 0, true},
	}
	for _, tc := range cases {
		got, err := parseStatusKB(status, tc.field)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseStatusKB(%s) = %d, %v; want %d, error %v", tc.field, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestShellQuote(t *testing.T) {
	cases := []struct{ in, want string }{
		{"./policy/", "./policy/"},
		{"-benchtime", "-benchtime"},
		{"^$", "'^$'"},
		{"postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
	}
	for _, tc := range cases {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
