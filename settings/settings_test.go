package settings_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/config"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/settings"
)

// env is a fake environment.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// testJWTSecret is a strong JWT secret: production mode requires one.
const testJWTSecret = "9d4c2b7e1f8a3605c7e2d9b41a6f8c3e"

func load(t *testing.T, kv ...string) (settings.Config, error) {
	t.Helper()
	return settings.Load(env(append([]string{"JWT_SECRET_KEY", testJWTSecret}, kv...)...))
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaults(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	c, err := load(t)
	if err != nil {
		t.Fatalf("Load with no environment: %v", err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"Database.Type", c.Database.Type, "sqlite"},
		{"Database.Path", c.Database.Path, filepath.Join(home, ".auth.sqlite3")},
		{"Database.PostgresURL", c.Database.PostgresURL.Reveal(), ""},
		{"Database.MaxOpenConns", c.Database.MaxOpenConns, 16},
		{"Server.Addr", c.Server.Addr(), "0.0.0.0:4000"},
		{"Server.AllowCORS", c.Server.AllowCORS, true},
		{"Server.Origins", fmt.Sprint(c.Server.Origins()), "[*]"},
		{"Server.ShutdownTimeout", c.Server.ShutdownTimeout, 15 * time.Second},
		{"Policy.TenantIdleTimeout", c.Policy.TenantIdleTimeout, 10 * time.Minute},
		{"Policy.MaxRoleDepth", c.Policy.MaxRoleDepth, 8},
		{"Policy.ConsistencyWait", c.Policy.ConsistencyWait, 100 * time.Millisecond},
		{"Policy.ChangesRetention", c.Policy.ChangesRetention, 168 * time.Hour},
		{"Policy.ExpirySweepInterval", c.Policy.ExpirySweepInterval, 30 * time.Second},
		{"Policy.ModelText", c.Policy.ModelText == auth.DefaultModel, true},
		{"Log", c.Log.Level + "/" + c.Log.Format, "info/json"},
		{"RateLimit.Default (tenants unlimited)", c.RateLimit.Default, ""},
		{"RateLimit.Limits", len(c.RateLimit.Limits), 0},
		{"RateLimit.UnauthenticatedLimits", fmt.Sprint(c.RateLimit.UnauthenticatedLimits), fmt.Sprint([]ratelimit.Limit{{Count: 1000, Period: time.Hour}})},
		{"RateLimit.StorageURL", c.RateLimit.StorageURL, "memory://"},
		{"JWT.Algorithm", c.JWT.Algorithm, "HS256"},
		{"JWT.AccessTokenExpireMin", c.JWT.AccessTokenExpireMin, 1440},
		{"JWT.Secret", c.JWT.Secret.Reveal(), testJWTSecret},
		{"Crypto.Enabled", c.Crypto.Enabled, false},
		{"Audit.CheckpointInterval (off)", c.Audit.CheckpointInterval, time.Duration(0)},
		{"Audit.CheckpointSink", c.Audit.CheckpointSink, "log"},
		{"File", c.File, ""},
	} {
		if fmt.Sprint(tc.got) != fmt.Sprint(tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestLoadEnvironmentWins(t *testing.T) {
	model := writeFile(t, "model.conf", auth.DefaultModel+"\n# edited\n")
	file := writeFile(t, "auth.yaml", `
server:
  port: 5000
  host: 127.0.0.1
log:
  level: warn
policy:
  max_role_depth: 2
`)
	c, err := load(t,
		"AUTH_CONFIG", file,
		"AUTH_DB_TYPE", "PostgreSQL",
		"POSTGRESQL_URL", "postgres://auth:pw@db:5432/auth?sslmode=verify-full",
		"AUTH_DB_MAX_OPEN_CONNS", "40",
		"AUTH_MIGRATE_ON_START", "no",
		"SERVER_PORT", " 6000 ",
		"ALLOW_CORS", "false",
		"CORS_ORIGINS", "https://a.example, https://b.example",
		"RATE_LIMIT_DEFAULT", "10/minute; 100 per hour",
		"RATELIMIT_STORAGE_URL", "redis://cache:6379/2",
		"JWT_SECRET_KEY", "f3a91c7d5e2b8046a1c9e7d3b5f20486",
		"JWT_ALGORITHM", "HS512",
		"JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "60",
		"AUTH_TENANT_IDLE_TIMEOUT", "30s",
		"AUTH_MAX_ROLE_DEPTH", "5",
		"AUTH_LOG_LEVEL", "DEBUG",
		"AUTH_LOG_FORMAT", "Text",
		"AUTH_SHUTDOWN_TIMEOUT", "2s",
		"AUTH_MODEL_PATH", model,
		"ENABLE_ENCRYPTION", "false",
		"AUTH_AUDIT_CHECKPOINT_KEY_FILE", "/etc/auth/checkpoint.pem",
		"AUTH_AUDIT_CHECKPOINT_INTERVAL", "15m",
		"AUTH_AUDIT_CHECKPOINT_SINK", " /var/log/auth/checkpoints.jsonl ",
	)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"File", c.File, file},
		{"Database.Type", c.Database.Type, "postgresql"},
		{"Database.PostgresURL", c.Database.PostgresURL.Reveal(), "postgres://auth:pw@db:5432/auth?sslmode=verify-full"},
		{"Database.MaxOpenConns", c.Database.MaxOpenConns, 40},
		{"Database.MigrateOnStart", c.Database.MigrateOnStart, false},
		{"Server.Addr (host from the file, port from the environment)", c.Server.Addr(), "127.0.0.1:6000"},
		{"Server.AllowCORS", c.Server.AllowCORS, false},
		{"Server.Origins", strings.Join(c.Server.Origins(), "|"), "https://a.example|https://b.example"},
		{"RateLimit.Limits", fmt.Sprint(c.RateLimit.Limits), fmt.Sprint([]ratelimit.Limit{{Count: 10, Period: time.Minute}, {Count: 100, Period: time.Hour}})},
		{"RateLimit.StorageURL", c.RateLimit.StorageURL, "redis://cache:6379/2"},
		{"JWT.Secret", c.JWT.Secret.Reveal(), "f3a91c7d5e2b8046a1c9e7d3b5f20486"},
		{"JWT.Algorithm", c.JWT.Algorithm, "HS512"},
		{"JWT.AccessTokenExpireMin", c.JWT.AccessTokenExpireMin, 60},
		{"Policy.TenantIdleTimeout", c.Policy.TenantIdleTimeout, 30 * time.Second},
		{"Policy.MaxRoleDepth (environment over file)", c.Policy.MaxRoleDepth, 5},
		{"Policy.ModelText", strings.HasSuffix(c.Policy.ModelText, "# edited\n"), true},
		{"Log (level from the environment over the file)", c.Log.Level + "/" + c.Log.Format, "debug/text"},
		{"Server.ShutdownTimeout", c.Server.ShutdownTimeout, 2 * time.Second},
		{"Audit.CheckpointKeyFile", c.Audit.CheckpointKeyFile, "/etc/auth/checkpoint.pem"},
		{"Audit.CheckpointInterval", c.Audit.CheckpointInterval, 15 * time.Minute},
		{"Audit.CheckpointSink", c.Audit.CheckpointSink, "/var/log/auth/checkpoints.jsonl"},
	} {
		if fmt.Sprint(tc.got) != fmt.Sprint(tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}

	// The file alone (no environment) sets what it names.
	c, err = load(t, "AUTH_CONFIG", file)
	if err != nil {
		t.Fatalf("Load with AUTH_CONFIG only: %v", err)
	}
	if c.Server.Port != 5000 || c.Log.Level != "warn" || c.Policy.MaxRoleDepth != 2 || c.JWT.Algorithm != "HS256" {
		t.Errorf("file values: port %d level %s depth %d alg %s; want 5000 warn 2 HS256 (the rest from the defaults)",
			c.Server.Port, c.Log.Level, c.Policy.MaxRoleDepth, c.JWT.Algorithm)
	}
	// A blank variable is unset, not an empty value.
	c, err = load(t, "SERVER_PORT", "  ", "AUTH_DB_TYPE", "")
	if err != nil || c.Server.Port != 4000 || c.Database.Type != "sqlite" {
		t.Errorf("blank variables: port %d type %q err %v; want the defaults", c.Server.Port, c.Database.Type, err)
	}
}

func TestLoadBadValues(t *testing.T) {
	unknownKey := writeFile(t, "unknown.yaml", "server:\n  port: 4000\n  colour: blue\n")
	badYAML := writeFile(t, "bad.yaml", "server: [\n")
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	for _, tc := range []struct {
		name    string
		env     []string
		setting string
	}{
		{"unknown database type", []string{"AUTH_DB_TYPE", "mysql"}, "AUTH_DB_TYPE"},
		{"postgresql without URL", []string{"AUTH_DB_TYPE", "postgresql"}, "POSTGRESQL_URL"},
		{"port not a number", []string{"SERVER_PORT", "http"}, "SERVER_PORT"},
		{"port out of range", []string{"SERVER_PORT", "70000"}, "SERVER_PORT"},
		{"negative port", []string{"SERVER_PORT", "-1"}, "SERVER_PORT"},
		{"CORS not a boolean", []string{"ALLOW_CORS", "maybe"}, "ALLOW_CORS"},
		{"CORS on without origins", []string{"CORS_ORIGINS", " , "}, "CORS_ORIGINS"},
		{"rate limit words", []string{"RATE_LIMIT_DEFAULT", "lots per hour"}, "RATE_LIMIT_DEFAULT"},
		{"rate limit unit", []string{"RATE_LIMIT_DEFAULT", "10 per fortnight"}, "RATE_LIMIT_DEFAULT"},
		{"rate limit zero", []string{"RATE_LIMIT_DEFAULT", "0/second"}, "RATE_LIMIT_DEFAULT"},
		{"rate-limit storage scheme", []string{"RATELIMIT_STORAGE_URL", "memcached://cache:11211"}, "RATELIMIT_STORAGE_URL"},
		{"rate-limit storage without host", []string{"RATELIMIT_STORAGE_URL", "redis://"}, "RATELIMIT_STORAGE_URL"},
		{"rate-limit storage TLS without host", []string{"RATELIMIT_STORAGE_URL", "rediss://"}, "RATELIMIT_STORAGE_URL"},
		{"rate-limit storage path only", []string{"RATELIMIT_STORAGE_URL", "redis:///0"}, "RATELIMIT_STORAGE_URL"},
		{"rate-limit storage database not a number", []string{"RATELIMIT_STORAGE_URL", "redis://cache:6379/zero"}, "RATELIMIT_STORAGE_URL"},
		{"JWT algorithm none", []string{"JWT_ALGORITHM", "none"}, "JWT_ALGORITHM"},
		{"JWT algorithm RS256", []string{"JWT_ALGORITHM", "RS256"}, "JWT_ALGORITHM"},
		{"JWT algorithm lower case", []string{"JWT_ALGORITHM", "hs256"}, "JWT_ALGORITHM"},
		{"token lifetime zero", []string{"JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "0"}, "JWT_ACCESS_TOKEN_EXPIRE_MINUTES"},
		{"token lifetime words", []string{"JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "one day"}, "JWT_ACCESS_TOKEN_EXPIRE_MINUTES"},
		{"token lifetime over a year", []string{"JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "525601"}, "JWT_ACCESS_TOKEN_EXPIRE_MINUTES"},
		{"idle timeout without unit", []string{"AUTH_TENANT_IDLE_TIMEOUT", "10"}, "AUTH_TENANT_IDLE_TIMEOUT"},
		{"idle timeout negative", []string{"AUTH_TENANT_IDLE_TIMEOUT", "-1m"}, "AUTH_TENANT_IDLE_TIMEOUT"},
		{"idle timeout zero", []string{"AUTH_TENANT_IDLE_TIMEOUT", "0s"}, "AUTH_TENANT_IDLE_TIMEOUT"},
		{"shutdown timeout", []string{"AUTH_SHUTDOWN_TIMEOUT", "soon"}, "AUTH_SHUTDOWN_TIMEOUT"},
		{"role depth too deep for Casbin", []string{"AUTH_MAX_ROLE_DEPTH", "10"}, "AUTH_MAX_ROLE_DEPTH"},
		{"role depth zero", []string{"AUTH_MAX_ROLE_DEPTH", "0"}, "AUTH_MAX_ROLE_DEPTH"},
		{"consistency wait negative", []string{"AUTH_CONSISTENCY_WAIT", "-1ms"}, "AUTH_CONSISTENCY_WAIT"},
		{"consistency wait over 10s", []string{"AUTH_CONSISTENCY_WAIT", "11s"}, "AUTH_CONSISTENCY_WAIT"},
		{"changes retention under a minute", []string{"AUTH_CHANGES_RETENTION", "30s"}, "AUTH_CHANGES_RETENTION"},
		{"changes retention over 366 days", []string{"AUTH_CHANGES_RETENTION", "8785h"}, "AUTH_CHANGES_RETENTION"},
		{"expiry sweep under 100ms", []string{"AUTH_EXPIRY_SWEEP_INTERVAL", "10ms"}, "AUTH_EXPIRY_SWEEP_INTERVAL"},
		{"expiry sweep over an hour", []string{"AUTH_EXPIRY_SWEEP_INTERVAL", "2h"}, "AUTH_EXPIRY_SWEEP_INTERVAL"},
		{"expiry sweep without unit", []string{"AUTH_EXPIRY_SWEEP_INTERVAL", "30"}, "AUTH_EXPIRY_SWEEP_INTERVAL"},
		{"pool size", []string{"AUTH_DB_MAX_OPEN_CONNS", "0"}, "AUTH_DB_MAX_OPEN_CONNS"},
		{"migrate flag", []string{"AUTH_MIGRATE_ON_START", "sometimes"}, "AUTH_MIGRATE_ON_START"},
		{"log level", []string{"AUTH_LOG_LEVEL", "loud"}, "AUTH_LOG_LEVEL"},
		{"log format", []string{"AUTH_LOG_FORMAT", "xml"}, "AUTH_LOG_FORMAT"},
		{"model file missing", []string{"AUTH_MODEL_PATH", missing}, "AUTH_MODEL_PATH"},
		{"config file missing", []string{"AUTH_CONFIG", missing}, "AUTH_CONFIG"},
		{"config file with an unknown key", []string{"AUTH_CONFIG", unknownKey}, "AUTH_CONFIG"},
		{"config file not YAML", []string{"AUTH_CONFIG", badYAML}, "AUTH_CONFIG"},
		{"encryption on with a short key", []string{"ENABLE_ENCRYPTION", "true", "ENCRYPTION_KEY", "k"}, "ENCRYPTION_KEY"},
		{"encryption on without a key", []string{"ENABLE_ENCRYPTION", "true"}, "ENCRYPTION_KEY"},
		{"encryption on with a placeholder key", []string{"ENABLE_ENCRYPTION", "true", "ENCRYPTION_KEY", "changeme-changeme-changeme-changeme"}, "ENCRYPTION_KEY"},
		{"short previous key", []string{"ENABLE_ENCRYPTION", "true", "ENCRYPTION_KEY", "3b9f6c1d8a2e4f7091c5d3b8a6e2f4c1x", "ENCRYPTION_KEY_PREVIOUS", "short"}, "ENCRYPTION_KEY_PREVIOUS"},
		{"encryption flag not a boolean", []string{"ENABLE_ENCRYPTION", "perhaps"}, "ENABLE_ENCRYPTION"},
		{"SQLite path blank in the file", []string{"AUTH_CONFIG", writeFile(t, "nopath.yaml", "database:\n  path: \"\"\n")}, "AUTH_DB_PATH"},
		{"checkpoint interval without a key", []string{"AUTH_AUDIT_CHECKPOINT_INTERVAL", "1h"}, "AUTH_AUDIT_CHECKPOINT_INTERVAL"},
		{"checkpoint interval negative", []string{"AUTH_AUDIT_CHECKPOINT_INTERVAL", "-1m", "AUTH_AUDIT_CHECKPOINT_KEY_FILE", "/k.pem"}, "AUTH_AUDIT_CHECKPOINT_INTERVAL"},
		{"checkpoint interval under a second", []string{"AUTH_AUDIT_CHECKPOINT_INTERVAL", "10ms", "AUTH_AUDIT_CHECKPOINT_KEY_FILE", "/k.pem"}, "AUTH_AUDIT_CHECKPOINT_INTERVAL"},
		{"checkpoint interval without a unit", []string{"AUTH_AUDIT_CHECKPOINT_INTERVAL", "60", "AUTH_AUDIT_CHECKPOINT_KEY_FILE", "/k.pem"}, "AUTH_AUDIT_CHECKPOINT_INTERVAL"},
		{"workflow interval under a second", []string{"AUTH_WORKFLOW_MIN_INTERVAL", "500ms"}, "AUTH_WORKFLOW_MIN_INTERVAL"},
		{"workflow lease zero", []string{"AUTH_WORKFLOW_LEASE", "0s"}, "AUTH_WORKFLOW_LEASE"},
		{"workflow sync interval over a minute", []string{"AUTH_WORKFLOW_SYNC_INTERVAL", "2m"}, "AUTH_WORKFLOW_SYNC_INTERVAL"},
		{"webhook timeout without a unit", []string{"AUTH_WEBHOOK_TIMEOUT", "10"}, "AUTH_WEBHOOK_TIMEOUT"},
		{"webhook attempts zero", []string{"AUTH_WEBHOOK_ATTEMPTS", "0"}, "AUTH_WEBHOOK_ATTEMPTS"},
		{"webhook attempts too many", []string{"AUTH_WEBHOOK_ATTEMPTS", "21"}, "AUTH_WEBHOOK_ATTEMPTS"},
		{"webhook host too long", []string{"AUTH_WEBHOOK_ALLOWED_HOSTS", "ok.example," + strings.Repeat("h", 256)}, "AUTH_WEBHOOK_ALLOWED_HOSTS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.env...)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load(%v) = %v, want a *config.Error", tc.env, err)
			}
			if ce.Setting != tc.setting {
				t.Errorf("Load(%v): error names %s, want %s: %v", tc.env, ce.Setting, tc.setting, err)
			}
			if !strings.Contains(err.Error(), tc.setting) {
				t.Errorf("error text %q does not name %s", err, tc.setting)
			}
		})
	}
}

// Secrets never appear in errors, in slog output or in fmt output.
func TestSecretsStayHidden(t *testing.T) {
	const (
		pgPassword  = "pg-pass-7f3a"
		jwtSecret   = "jwt-7c1e09b2d4f6a8c3e5b7d9f1a3c5e7b9d1"
		cryptoKey   = "crypto-key-55de"
		redisSecret = "redis-pass-c0ff"
	)
	secretEnv := []string{
		"POSTGRESQL_URL", "postgres://auth:" + pgPassword + "@db/auth",
		"JWT_SECRET_KEY", jwtSecret,
		"ENCRYPTION_KEY", cryptoKey,
	}
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"bad database type", []string{"AUTH_DB_TYPE", "mysql"}},
		{"bad port", []string{"SERVER_PORT", "x"}},
		{"encryption on", []string{"ENABLE_ENCRYPTION", "true"}},
		{"bad JWT algorithm", []string{"JWT_ALGORITHM", "none"}},
		{"mistyped Redis URL with a password", []string{"RATELIMIT_STORAGE_URL", "redis:/default:" + redisSecret + "@cache:6379"}},
		{"Redis URL with a password and a bad scheme", []string{"RATELIMIT_STORAGE_URL", "http://default:" + redisSecret + "@cache:6379"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, append(append([]string(nil), secretEnv...), tc.env...)...)
			if err == nil {
				t.Fatalf("Load(%v) succeeded, want an error", tc.env)
			}
			for _, s := range []string{pgPassword, jwtSecret, cryptoKey, redisSecret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q reveals a secret", err)
				}
			}
		})
	}

	c, err := load(t, append(secretEnv, "AUTH_DB_TYPE", "postgresql")...)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("config", "jwt", c.JWT.Secret, "url", c.Database.PostgresURL, "crypto", c.Crypto.Key, "all", c)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "jwt", c.JWT.Secret, "db", c.Database)
	fmt.Fprintf(&buf, "%v %+v %#v %s %q %x\n", c, c, c, c.JWT.Secret, c.JWT.Secret, c.JWT.Secret)
	if b, err := json.Marshal(c); err == nil {
		buf.Write(b)
	}
	out := buf.String()
	for _, s := range []string{pgPassword, jwtSecret, cryptoKey} {
		if strings.Contains(out, s) {
			t.Errorf("logs or fmt output reveal the secret %q:\n%s", s, out)
		}
	}
	if !strings.Contains(out, `"jwt":"REDACTED"`) {
		t.Errorf("slog JSON output of a Secret is not REDACTED:\n%s", out)
	}
	if got := config.Secret("").LogValue().String(); got != "" {
		t.Errorf("an empty Secret logs as %q, want empty (so that \"not set\" is visible)", got)
	}
}

func TestLoadStorageURLs(t *testing.T) {
	for _, u := range []string{"memory://", "redis://cache:6379", "redis://cache:6379/0", "rediss://:pw@cache:6380/15", "redis://user:pw@10.0.0.1"} {
		c, err := load(t, "RATELIMIT_STORAGE_URL", u)
		if err != nil {
			t.Errorf("RATELIMIT_STORAGE_URL=%s: %v", u, err)
			continue
		}
		if c.RateLimit.StorageURL != u {
			t.Errorf("StorageURL = %q, want %q", c.RateLimit.StorageURL, u)
		}
	}
}

// TestServerAddr: SERVER_HOST may be a name, an IPv4 address or an IPv6
// address with or without brackets; the listen address is always valid.
func TestServerAddr(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"0.0.0.0", "0.0.0.0:4100"},
		{"localhost", "localhost:4100"},
		{"::1", "[::1]:4100"},
		{"[::1]", "[::1]:4100"},
		{"::", "[::]:4100"},
		{"fe80::1%eth0", "[fe80::1%eth0]:4100"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			c, err := load(t, "SERVER_HOST", tc.host, "SERVER_PORT", "4100")
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Server.Addr(); got != tc.want {
				t.Errorf("Addr() = %q, want %q", got, tc.want)
			}
		})
	}
}
