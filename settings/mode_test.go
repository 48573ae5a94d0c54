package settings_test

import (
	"errors"
	"testing"

	"github.com/ourway/auth/internal/config"
)

// The log format, the audit records written to the log and the webhook
// hosts allowed to be local depend on the mode when they are not set; a
// setting wins.
func TestModeDefaults(t *testing.T) {
	const loopback = "localhost,127.0.0.1,::1"
	for _, tc := range []struct {
		name                    string
		env                     []string
		format, auditLog, hosts string
	}{
		{"production", nil, "json", "all", ""},
		{"development", []string{"AUTH_ENV", "development"}, "text", "changes", loopback},
		{"development, json asked", []string{"AUTH_ENV", "development", "AUTH_LOG_FORMAT", "JSON"}, "json", "changes", loopback},
		{"development, every record asked", []string{"AUTH_ENV", "development", "AUTH_AUDIT_LOG", "all"}, "text", "all", loopback},
		{"development, one webhook host", []string{"AUTH_ENV", "development", "AUTH_WEBHOOK_ALLOWED_HOSTS", "hooks.internal"}, "text", "changes", "hooks.internal"},
		{"production, text and no records asked", []string{"AUTH_LOG_FORMAT", "text", "AUTH_AUDIT_LOG", "none"}, "text", "none", ""},
		{"development from the file", []string{"AUTH_CONFIG", "FILE"}, "text", "changes", loopback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if len(env) == 2 && env[1] == "FILE" {
				env = []string{"AUTH_CONFIG", writeFile(t, "dev.yaml", "env: development\n")}
			}
			c, err := load(t, env...)
			if err != nil {
				t.Fatal(err)
			}
			if c.Log.Format != tc.format || c.Audit.Log != tc.auditLog || c.Webhooks.AllowedHosts != tc.hosts {
				t.Errorf("log format %q, audit log %q, webhook hosts %q; want %q, %q, %q", c.Log.Format, c.Audit.Log,
					c.Webhooks.AllowedHosts, tc.format, tc.auditLog, tc.hosts)
			}
		})
	}
	_, err := load(t, "AUTH_AUDIT_LOG", "decisions")
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Setting != "AUTH_AUDIT_LOG" {
		t.Errorf("AUTH_AUDIT_LOG=decisions: %v, want an error naming it", err)
	}
}
