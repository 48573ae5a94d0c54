package settings_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ourway/auth/internal/config"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/settings"
)

func TestRateLimitAndHardeningDefaults(t *testing.T) {
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		// Tenants unlimited; refused requests 1000 per hour per IP.
		{"ClassLimits", fmt.Sprint(c.RateLimit.ClassLimits()), fmt.Sprint(map[string][]ratelimit.Limit{"unauthenticated": {{Count: 1000, Period: time.Hour}}})},
		{"Replicas", c.RateLimit.Replicas, 1},
		{"ReadHeaderTimeout", c.Server.ReadHeaderTimeout, 5 * time.Second},
		{"Proxies", len(c.Server.Proxies), 0},
	} {
		if fmt.Sprint(tc.got) != fmt.Sprint(tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestRateLimitClassesFromEnvironmentAndFile(t *testing.T) {
	file := writeFile(t, "auth.yaml", `
rate_limit:
  default: 100 per minute
  reads: 50/second
  writes: 10 per minute; 100 per hour
server:
  read_header_timeout: 250ms
  trusted_proxies: 10.0.0.0/8
`)
	for _, tc := range []struct {
		name    string
		env     []string
		want    map[string][]ratelimit.Limit
		timeout time.Duration
		proxies string
	}{
		{
			name: "file",
			env:  []string{"AUTH_CONFIG", file},
			want: map[string][]ratelimit.Limit{
				"default": {{Count: 100, Period: time.Minute}},
				"reads":   {{Count: 50, Period: time.Second}},
				"writes":  {{Count: 10, Period: time.Minute}, {Count: 100, Period: time.Hour}},
			},
			timeout: 250 * time.Millisecond,
			proxies: "[10.0.0.0/8]",
		},
		{
			name: "environment wins",
			env: []string{"AUTH_CONFIG", file, "RATE_LIMIT_DEFAULT", "7/hour", "AUTH_RATE_LIMIT_READS", "8/hour",
				"AUTH_RATE_LIMIT_UNAUTHENTICATED", "9 per day", "AUTH_READ_HEADER_TIMEOUT", "2s",
				"AUTH_TRUSTED_PROXIES", " 127.0.0.1 , ::1, fd00::/8,", "AUTH_RATE_LIMIT_REPLICAS", "3"},
			want: map[string][]ratelimit.Limit{
				"default":         {{Count: 7, Period: time.Hour}},
				"reads":           {{Count: 8, Period: time.Hour}},
				"writes":          {{Count: 10, Period: time.Minute}, {Count: 100, Period: time.Hour}},
				"unauthenticated": {{Count: 9, Period: 24 * time.Hour}},
			},
			timeout: 2 * time.Second,
			proxies: "[127.0.0.1/32 ::1/128 fd00::/8]",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.env...)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprint(c.RateLimit.ClassLimits()), fmt.Sprint(tc.want); got != want {
				t.Errorf("ClassLimits = %s, want %s", got, want)
			}
			if c.Server.ReadHeaderTimeout != tc.timeout {
				t.Errorf("ReadHeaderTimeout = %v, want %v", c.Server.ReadHeaderTimeout, tc.timeout)
			}
			if got := fmt.Sprint(c.Server.Proxies); got != tc.proxies {
				t.Errorf("Proxies = %s, want %s", got, tc.proxies)
			}
		})
	}
}

// RATE_LIMIT_DEFAULT, when set, limits tenants and refused requests (per
// IP) unless AUTH_RATE_LIMIT_UNAUTHENTICATED is set; unset, tenants are not
// limited and refused requests get 1000 per hour per IP.
func TestRateLimitDefaultFallbacks(t *testing.T) {
	hour := func(n int) []ratelimit.Limit { return []ratelimit.Limit{{Count: n, Period: time.Hour}} }
	for _, tc := range []struct {
		name string
		env  []string
		want map[string][]ratelimit.Limit
	}{
		{"nothing set", nil, map[string][]ratelimit.Limit{"unauthenticated": hour(1000)}},
		{"default set", []string{"RATE_LIMIT_DEFAULT", "50 per hour"}, map[string][]ratelimit.Limit{"default": hour(50)}},
		{"default and unauthenticated", []string{"RATE_LIMIT_DEFAULT", "50 per hour", "AUTH_RATE_LIMIT_UNAUTHENTICATED", "7 per hour"},
			map[string][]ratelimit.Limit{"default": hour(50), "unauthenticated": hour(7)}},
		{"unauthenticated only", []string{"AUTH_RATE_LIMIT_UNAUTHENTICATED", "7 per hour"}, map[string][]ratelimit.Limit{"unauthenticated": hour(7)}},
		{"reads only", []string{"AUTH_RATE_LIMIT_READS", "9 per hour"}, map[string][]ratelimit.Limit{"reads": hour(9), "unauthenticated": hour(1000)}},
		{"blank default", []string{"RATE_LIMIT_DEFAULT", "  "}, map[string][]ratelimit.Limit{"unauthenticated": hour(1000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.env...)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprint(c.RateLimit.ClassLimits()), fmt.Sprint(tc.want); got != want {
				t.Errorf("ClassLimits = %s, want %s", got, want)
			}
		})
	}
}

func TestRateLimitAndHardeningBadValues(t *testing.T) {
	for _, tc := range []struct {
		env     []string
		setting string
	}{
		{[]string{"AUTH_RATE_LIMIT_READS", "many"}, "AUTH_RATE_LIMIT_READS"},
		{[]string{"AUTH_RATE_LIMIT_WRITES", "10 per fortnight"}, "AUTH_RATE_LIMIT_WRITES"},
		{[]string{"AUTH_RATE_LIMIT_UNAUTHENTICATED", "0 per hour"}, "AUTH_RATE_LIMIT_UNAUTHENTICATED"},
		{[]string{"AUTH_RATE_LIMIT_REPLICAS", "0"}, "AUTH_RATE_LIMIT_REPLICAS"},
		{[]string{"AUTH_RATE_LIMIT_REPLICAS", "two"}, "AUTH_RATE_LIMIT_REPLICAS"},
		{[]string{"AUTH_READ_HEADER_TIMEOUT", "0s"}, "AUTH_READ_HEADER_TIMEOUT"},
		{[]string{"AUTH_READ_HEADER_TIMEOUT", "2h"}, "AUTH_READ_HEADER_TIMEOUT"},
		{[]string{"AUTH_READ_HEADER_TIMEOUT", "soon"}, "AUTH_READ_HEADER_TIMEOUT"},
		{[]string{"AUTH_TRUSTED_PROXIES", "10.0.0.0/33"}, "AUTH_TRUSTED_PROXIES"},
		{[]string{"AUTH_TRUSTED_PROXIES", "10.0.0.1/8"}, "AUTH_TRUSTED_PROXIES"},
		{[]string{"AUTH_TRUSTED_PROXIES", "proxy.internal"}, "AUTH_TRUSTED_PROXIES"},
		{[]string{"AUTH_TRUSTED_PROXIES", "0.0.0.0/0"}, "AUTH_TRUSTED_PROXIES"},
		{[]string{"AUTH_TRUSTED_PROXIES", "10.0.0.0/8 192.168.0.0/16"}, "AUTH_TRUSTED_PROXIES"},
	} {
		_, err := load(t, tc.env...)
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Setting != tc.setting {
			t.Errorf("%v: error %v, want one naming %s", tc.env, err, tc.setting)
		}
	}
}

// FuzzRateLimitSection feeds arbitrary rate_limit sections of a
// configuration file to Load: it errors naming a setting, or every route
// class ends up with sound limits.
func FuzzRateLimitSection(f *testing.F) {
	for _, s := range [][4]string{
		{"1000 per hour", "", "", ""},
		{"10/second", "5 per minute", "1 per day; 10 per hour", "1/second"},
		{"1 per 1000 days", "1000000000 per second", "", ""},
		{"", "x", "10 per", "0/hour"},
	} {
		f.Add(s[0], s[1], s[2], s[3], 1)
	}
	f.Fuzz(func(t *testing.T, def, reads, writes, unauth string, replicas int) {
		yaml := fmt.Sprintf("rate_limit:\n  default: %q\n  reads: %q\n  writes: %q\n  unauthenticated: %q\n  replicas: %d\n",
			def, reads, writes, unauth, replicas)
		c, err := settings.Load(env("JWT_SECRET_KEY", testJWTSecret, "AUTH_CONFIG", writeFuzzFile(t, yaml)))
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Setting == "" {
				t.Fatalf("%s: error %v does not name a setting", yaml, err)
			}
			return
		}
		classes := c.RateLimit.ClassLimits()
		if len(classes[ratelimit.Default]) == 0 && len(classes[ratelimit.Unauthenticated]) == 0 {
			t.Fatalf("%s: requests refused by the authentication gate are not limited", yaml)
		}
		for class, limits := range classes {
			for _, l := range limits {
				if l.Count < 1 || l.Period <= 0 {
					t.Fatalf("%s: class %s has limit %#v", yaml, class, l)
				}
			}
		}
		if c.RateLimit.Replicas < 1 {
			t.Fatalf("%s: replicas %d accepted", yaml, c.RateLimit.Replicas)
		}
		if _, err := ratelimit.New(ratelimit.Options{Limits: classes, Replicas: c.RateLimit.Replicas}); err != nil {
			t.Fatalf("%s: the limiter refuses an accepted configuration: %v", yaml, err)
		}
	})
}

func writeFuzzFile(t *testing.T, text string) string {
	t.Helper()
	return writeFile(t, "auth.yaml", text)
}
