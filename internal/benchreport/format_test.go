package benchreport

import (
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	cases := []struct {
		name, got, want string
	}{
		{"Count small", Count(7), "7"},
		{"Count thousands", Count(1000), "1 000"},
		{"Count million", Count(1234567), "1 234 567"},
		{"Count negative", Count(-45000), "-45 000"},
		{"Rate whole", Rate(12345.6), "12 346"},
		{"Rate small", Rate(42.25), "42.2"},
		{"Percent", Percent(0.523), "52 %"},
		{"Ratio", Ratio(1.349), "1.35×"},
		{"Duration ns", Duration(512), "512 ns"},
		{"Duration µs", Duration(812400 * time.Nanosecond), "812 µs"},
		{"Duration small ms", Duration(4123 * time.Microsecond), "4.12 ms"},
		{"Duration ms", Duration(41234 * time.Microsecond), "41.2 ms"},
		{"Duration s", Duration(1234 * time.Millisecond), "1.23 s"},
		{"Duration zero", Duration(0), "0"},
		{"Bytes", Bytes(512), "512 B"},
		{"Bytes MiB", Bytes(1182687232), "1.10 GiB"},
		{"Bytes KiB", Bytes(40 << 10), "40.0 KiB"},
		{"Bytes negative", Bytes(-3 << 20), "-3.00 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestMemoryNote(t *testing.T) {
	cases := []struct {
		log  []string
		want string
	}{
		{[]string{"10 grants, 10 memberships, 1 roles: set-up 48ms; 0.0 MB in memory, 2166 bytes per rule"}, "0.0 MB, 2166 bytes per rule"},
		{[]string{"100 tenants: seeded in 253ms, loaded in 175ms; 3.9 MB in memory, 39.5 KB per tenant"}, "3.9 MB, 39.5 KB per tenant"},
		{[]string{"something else"}, ""},
		{nil, ""},
	}
	for _, tc := range cases {
		if got := memoryNote(tc.log); got != tc.want {
			t.Errorf("memoryNote(%q) = %q, want %q", tc.log, got, tc.want)
		}
	}
}
