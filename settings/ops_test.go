package settings_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/internal/config"
)

func TestOpsSettings(t *testing.T) {
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"DBTimeout", c.Ops.DBTimeout, 5 * time.Second},
		{"DBBreakerErrors", c.Ops.DBBreakerErrors, 5},
		{"DBBreakerTimeout", c.Ops.DBBreakerTimeout, 5 * time.Second},
		{"AuditBlockTimeout", c.Ops.AuditBlockTimeout, time.Second},
		{"MetricsToken", c.Ops.MetricsToken.Reveal(), ""},
		{"Addr", c.Ops.Addr, ""},
	} {
		if tc.got != tc.want {
			t.Errorf("default %s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}

	const token = "metrics-token-0123456789abcdef"
	c, err = load(t, "AUTH_DB_TIMEOUT", "750ms", "AUTH_DB_BREAKER_ERRORS", "3", "AUTH_DB_BREAKER_TIMEOUT", "2s",
		"AUTH_AUDIT_BLOCK_TIMEOUT", "20ms", "AUTH_METRICS_TOKEN", token, "AUTH_OPS_ADDR", "127.0.0.1:9090",
		"AUTH_PPROF_ADDR", "127.0.0.1:6060")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"DBTimeout", c.Ops.DBTimeout, 750 * time.Millisecond},
		{"DBBreakerErrors", c.Ops.DBBreakerErrors, 3},
		{"DBBreakerTimeout", c.Ops.DBBreakerTimeout, 2 * time.Second},
		{"AuditBlockTimeout", c.Ops.AuditBlockTimeout, 20 * time.Millisecond},
		{"MetricsToken", c.Ops.MetricsToken.Reveal(), token},
		{"PprofAddr", c.Ops.PprofAddr, "127.0.0.1:6060"},
		{"Addr", c.Ops.Addr, "127.0.0.1:9090"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, token) {
		t.Errorf("the metrics token shows in a formatted Config")
	}
}

func TestOpsBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, value, reason string
	}{
		{"AUTH_DB_TIMEOUT", "0s", "between"},
		{"AUTH_DB_TIMEOUT", "1h", "between"},
		{"AUTH_DB_TIMEOUT", "soon", "duration"},
		{"AUTH_DB_BREAKER_ERRORS", "0", "between"},
		{"AUTH_DB_BREAKER_ERRORS", "many", "whole number"},
		{"AUTH_DB_BREAKER_TIMEOUT", "-1s", "between"},
		{"AUTH_AUDIT_BLOCK_TIMEOUT", "2m", "between"},
		{"AUTH_METRICS_TOKEN", "short", "at least 16"},
		{"AUTH_OPS_ADDR", "9090", "host:port"},
		{"AUTH_OPS_ADDR", "localhost:metrics", "host:port"},
		{"AUTH_OPS_ADDR", "127.0.0.1:70000", "host:port"},
		{"AUTH_OPS_ADDR", "::1:9090", "host:port"},
		{"AUTH_OPS_ADDR", "0.0.0.0:4000", "differ"},
		{"AUTH_PPROF_ADDR", "0.0.0.0:6060", "loopback"},
		{"AUTH_PPROF_ADDR", ":6060", "loopback"},
		{"AUTH_PPROF_ADDR", "6060", "host:port"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			_, err := load(t, tc.name, tc.value)
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Setting != tc.name || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error = %v, want one naming %s (%s)", err, tc.name, tc.reason)
			}
			if tc.name == "AUTH_METRICS_TOKEN" && strings.Contains(err.Error(), tc.value) {
				t.Errorf("error echoes the token: %v", err)
			}
		})
	}
}
