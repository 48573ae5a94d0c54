// Package config loads the one configuration of auth-server: the defaults in
// config.yaml, then environment variables (which win), validated once at start.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/internal/secret"
)

// Secret is a string that never appears in logs.
type Secret string

// LogValue implements slog.LogValuer so that a Secret logs as REDACTED.
func (s Secret) LogValue() slog.Value {
	if s == "" {
		return slog.StringValue("")
	}
	return slog.StringValue("REDACTED")
}

// String hides the value from fmt as well.
func (s Secret) String() string { return s.LogValue().String() }

// GoString hides the value from %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText hides the value from encoders (JSON, YAML) that would
// otherwise write the string itself.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret value itself.
func (s Secret) Reveal() string { return string(s) }

// Config is the whole configuration of the service.
type Config struct {
	Server    Server    `yaml:"server"`
	Database  Database  `yaml:"database"`
	Policy    Policy    `yaml:"policy"`
	Log       Log       `yaml:"log"`
	RateLimit RateLimit `yaml:"rate_limit"`
	JWT       JWT       `yaml:"jwt"`
	Audit     Audit     `yaml:"audit"`
	Keys      Keys      `yaml:"keys"`
	Ops       Ops       `yaml:"ops"`
	Replica   Replica   `yaml:"replica"`
	Tenants   Tenants   `yaml:"tenants"`
	Crypto    Crypto    `yaml:"-"`
	// Env is "production" (the default) or "development", which relaxes the
	// requirement for secrets (a local audit key is generated and kept).
	Env string `yaml:"env"`
	// File is the configuration file that was read ("" for the built-in one).
	File string `yaml:"-"`
}

// Server is the HTTP listener section.
type Server struct {
	Host            string        `yaml:"host"`
	Port            int           `yaml:"port"`
	AllowCORS       bool          `yaml:"allow_cors"`
	CORSOrigins     string        `yaml:"cors_origins"`
	ReadTimeout     time.Duration `yaml:"read_timeout"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ReadHeaderTimeout bounds the reading of a request's headers (slow
	// clients are cut off).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// TrustedProxies is a comma-separated list of CIDRs whose
	// X-Forwarded-For is believed; Proxies is it parsed.
	TrustedProxies string       `yaml:"trusted_proxies"`
	Proxies        []*net.IPNet `yaml:"-"`
}

// Addr is host:port, with an IPv6 host in brackets ("[::1]:4000"); the host
// may be given with or without them.
func (s Server) Addr() string {
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(s.Host, "["), "]"), strconv.Itoa(s.Port))
}

// Origins returns the CORS origins as a list.
func (s Server) Origins() []string {
	var out []string
	for _, o := range strings.Split(s.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// Database is the storage section.
type Database struct {
	Type           string `yaml:"type"`
	Path           string `yaml:"path"`
	PostgresURL    Secret `yaml:"-"`
	MaxOpenConns   int    `yaml:"max_open_conns"`
	MigrateOnStart bool   `yaml:"migrate_on_start"`
}

// Policy is the authorization-core section.
type Policy struct {
	ModelPath         string        `yaml:"model_path"`
	TenantIdleTimeout time.Duration `yaml:"tenant_idle_timeout"`
	MaxRoleDepth      int           `yaml:"max_role_depth"`
	// ModelText is the model read from ModelPath, or the built-in one.
	ModelText string `yaml:"-"`
}

// Log is the logging section.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// RateLimit is the rate-limit section.
type RateLimit struct {
	Default    string `yaml:"default"`
	StorageURL string `yaml:"storage_url"`
	// Reads, Writes and Unauthenticated override Default for GET/HEAD
	// /api routes, for the other /api routes, and for requests refused by
	// the authentication gate (per IP); empty means Default.
	Reads           string `yaml:"reads"`
	Writes          string `yaml:"writes"`
	Unauthenticated string `yaml:"unauthenticated"`
	// Replicas divides the limits of the local fallback used while Redis
	// is unreachable (each of N replicas then allows 1/N).
	Replicas int `yaml:"replicas"`
	// Limits is Default parsed; the others are their settings parsed (nil
	// when unset).
	Limits                []ratelimit.Limit `yaml:"-"`
	ReadLimits            []ratelimit.Limit `yaml:"-"`
	WriteLimits           []ratelimit.Limit `yaml:"-"`
	UnauthenticatedLimits []ratelimit.Limit `yaml:"-"`
}

// JWT is the token section.
type JWT struct {
	Secret               Secret `yaml:"-"`
	Algorithm            string `yaml:"algorithm"`
	AccessTokenExpireMin int    `yaml:"access_token_expire_minutes"`
	Issuer               string `yaml:"issuer"`
	Audience             string `yaml:"audience"`
	// JWKSURL, when set, is the JWKS of an external identity provider
	// whose tokens are accepted too, with iss JWKSIssuer and aud
	// JWKSAudience; TenantClaim names the claim holding the tenant.
	JWKSURL      string `yaml:"jwks_url"`
	JWKSIssuer   string `yaml:"jwks_issuer"`
	JWKSAudience string `yaml:"jwks_audience"`
	TenantClaim  string `yaml:"tenant_claim"`
}

// Replica is the replica-sync section.
type Replica struct {
	// RedisURL is the Redis that replicas exchange changes through
	// (default: RATELIMIT_STORAGE_URL when that is Redis).
	RedisURL string `yaml:"redis_url"`
	// Channel is the pub/sub channel of the replicas.
	Channel string `yaml:"channel"`
	// SyncInterval is how often loaded tenants' versions are compared with
	// the database (anti-entropy).
	SyncInterval time.Duration `yaml:"sync_interval"`
}

// Keys is the client-key section.
type Keys struct {
	// RegisteredOnly refuses client keys that were not registered with
	// `auth-server tenant create`.
	RegisteredOnly bool `yaml:"registered_only"`
	// RotationGrace is how long a rotated-away key keeps working.
	RotationGrace time.Duration `yaml:"rotation_grace"`
	// CacheTTL bounds how long a key lookup is reused.
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// Audit is the audit-trail section.
type Audit struct {
	// Key seals the audit chain and keys fingerprints; it must live outside
	// the database. KeyFile names a file holding it instead.
	Key           Secret `yaml:"-"`
	KeyFile       string `yaml:"key_file"`
	Decisions     string `yaml:"decisions"`
	Overflow      string `yaml:"overflow"`
	QueueSize     int    `yaml:"queue_size"`
	RetentionDays int    `yaml:"retention_days"`
	// CheckpointKeyFile names the PEM Ed25519 private key that signs chain
	// checkpoints (kept outside the database). CheckpointInterval is how
	// often the server writes them (0: never); CheckpointSink is where:
	// a file path (JSON lines appended and synced), "stdout" or "log".
	CheckpointKeyFile  string        `yaml:"checkpoint_key_file"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	CheckpointSink     string        `yaml:"checkpoint_sink"`
}

// Development reports whether the service runs in development mode.
func (c Config) Development() bool { return c.Env == "development" }

// Crypto is the field-encryption section (secrets only, from the environment).
type Crypto struct {
	Enabled bool
	Key     Secret
	// Previous keys are still read (never written) while `auth-server
	// rekey` re-encrypts data to Key.
	Previous []Secret
}

// Error is a configuration error that names the offending setting.
type Error struct {
	Setting string
	Value   string
	Reason  string
}

func (e *Error) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("invalid configuration: %s: %s", e.Setting, e.Reason)
	}
	return fmt.Sprintf("invalid configuration: %s=%q: %s", e.Setting, e.Value, e.Reason)
}

// Load builds the configuration from the built-in defaults, the file named by
// AUTH_CONFIG (if any) and the environment read through getenv.
func Load(defaults []byte, defaultModel string, getenv func(string) string) (Config, error) {
	var c Config
	if err := decodeYAML(defaults, &c); err != nil {
		return c, fmt.Errorf("built-in config.yaml: %w", err)
	}
	if p := getenv("AUTH_CONFIG"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return c, &Error{Setting: "AUTH_CONFIG", Value: p, Reason: err.Error()}
		}
		if err := decodeYAML(b, &c); err != nil {
			return c, &Error{Setting: "AUTH_CONFIG", Value: p, Reason: err.Error()}
		}
		c.File = p
	}
	if err := applyEnv(&c, getenv); err != nil {
		return c, err
	}
	if err := c.finish(defaultModel); err != nil {
		return c, err
	}
	return c, nil
}

func decodeYAML(b []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

type envVar struct {
	name string
	set  func(v string) error
}

func applyEnv(c *Config, getenv func(string) string) error {
	vars := []envVar{
		{"AUTH_DB_TYPE", func(v string) error { c.Database.Type = strings.ToLower(v); return nil }},
		{"POSTGRESQL_URL", func(v string) error { c.Database.PostgresURL = Secret(v); return nil }},
		{"AUTH_DB_PATH", func(v string) error { c.Database.Path = v; return nil }},
		{"AUTH_DB_MAX_OPEN_CONNS", intSetter(&c.Database.MaxOpenConns)},
		{"AUTH_MIGRATE_ON_START", boolSetter(&c.Database.MigrateOnStart)},
		{"JWT_SECRET_KEY", func(v string) error { c.JWT.Secret = Secret(v); return nil }},
		{"JWT_ALGORITHM", func(v string) error { c.JWT.Algorithm = v; return nil }},
		{"JWT_ACCESS_TOKEN_EXPIRE_MINUTES", intSetter(&c.JWT.AccessTokenExpireMin)},
		{"AUTH_JWT_ISSUER", func(v string) error { c.JWT.Issuer = v; return nil }},
		{"AUTH_JWT_AUDIENCE", func(v string) error { c.JWT.Audience = v; return nil }},
		{"AUTH_REGISTERED_KEYS_ONLY", boolSetter(&c.Keys.RegisteredOnly)},
		{"AUTH_WATCHER_REDIS_URL", func(v string) error { c.Replica.RedisURL = v; return nil }},
		{"AUTH_WATCHER_CHANNEL", func(v string) error { c.Replica.Channel = v; return nil }},
		{"AUTH_SYNC_INTERVAL", durationSetter(&c.Replica.SyncInterval)},
		{"AUTH_KEY_ROTATION_GRACE", durationSetter(&c.Keys.RotationGrace)},
		{"AUTH_KEY_CACHE_TTL", durationSetter(&c.Keys.CacheTTL)},
		{"ENABLE_ENCRYPTION", boolSetter(&c.Crypto.Enabled)},
		{"ENCRYPTION_KEY", func(v string) error { c.Crypto.Key = Secret(v); return nil }},
		{"ENCRYPTION_KEY_PREVIOUS", func(v string) error {
			c.Crypto.Previous = nil
			for _, k := range strings.Split(v, ",") {
				if k = strings.TrimSpace(k); k != "" {
					c.Crypto.Previous = append(c.Crypto.Previous, Secret(k))
				}
			}
			return nil
		}},
		{"RATE_LIMIT_DEFAULT", func(v string) error { c.RateLimit.Default = v; return nil }},
		{"RATELIMIT_STORAGE_URL", func(v string) error { c.RateLimit.StorageURL = v; return nil }},
		{"AUTH_RATE_LIMIT_READS", func(v string) error { c.RateLimit.Reads = v; return nil }},
		{"AUTH_RATE_LIMIT_WRITES", func(v string) error { c.RateLimit.Writes = v; return nil }},
		{"AUTH_RATE_LIMIT_UNAUTHENTICATED", func(v string) error { c.RateLimit.Unauthenticated = v; return nil }},
		{"AUTH_RATE_LIMIT_REPLICAS", intSetter(&c.RateLimit.Replicas)},
		{"AUTH_TRUSTED_PROXIES", func(v string) error { c.Server.TrustedProxies = v; return nil }},
		{"AUTH_READ_HEADER_TIMEOUT", durationSetter(&c.Server.ReadHeaderTimeout)},
		{"SERVER_HOST", func(v string) error { c.Server.Host = v; return nil }},
		{"SERVER_PORT", intSetter(&c.Server.Port)},
		{"ALLOW_CORS", boolSetter(&c.Server.AllowCORS)},
		{"CORS_ORIGINS", func(v string) error { c.Server.CORSOrigins = v; return nil }},
		{"AUTH_MODEL_PATH", func(v string) error { c.Policy.ModelPath = v; return nil }},
		{"AUTH_TENANT_IDLE_TIMEOUT", durationSetter(&c.Policy.TenantIdleTimeout)},
		{"AUTH_MAX_ROLE_DEPTH", intSetter(&c.Policy.MaxRoleDepth)},
		{"AUTH_ENV", func(v string) error { c.Env = strings.ToLower(v); return nil }},
		{"AUTH_AUDIT_KEY", func(v string) error { c.Audit.Key = Secret(v); return nil }},
		{"AUTH_AUDIT_KEY_FILE", func(v string) error { c.Audit.KeyFile = v; return nil }},
		{"AUTH_AUDIT_DECISIONS", func(v string) error { c.Audit.Decisions = strings.ToLower(v); return nil }},
		{"AUTH_AUDIT_OVERFLOW", func(v string) error { c.Audit.Overflow = strings.ToLower(v); return nil }},
		{"AUTH_AUDIT_QUEUE_SIZE", intSetter(&c.Audit.QueueSize)},
		{"AUTH_AUDIT_RETENTION_DAYS", intSetter(&c.Audit.RetentionDays)},
		{"AUTH_AUDIT_CHECKPOINT_KEY_FILE", func(v string) error { c.Audit.CheckpointKeyFile = v; return nil }},
		{"AUTH_AUDIT_CHECKPOINT_INTERVAL", durationSetter(&c.Audit.CheckpointInterval)},
		{"AUTH_AUDIT_CHECKPOINT_SINK", func(v string) error { c.Audit.CheckpointSink = v; return nil }},
		{"AUTH_LOG_LEVEL", func(v string) error { c.Log.Level = strings.ToLower(v); return nil }},
		{"AUTH_LOG_FORMAT", func(v string) error { c.Log.Format = strings.ToLower(v); return nil }},
		{"AUTH_SHUTDOWN_TIMEOUT", durationSetter(&c.Server.ShutdownTimeout)},
	}
	vars = append(vars, opsVars(c)...)
	vars = append(vars, jwksVars(c)...)
	vars = append(vars, tenantVars(c)...)
	for _, ev := range vars {
		v, ok := lookup(getenv, ev.name)
		if !ok {
			continue
		}
		if err := ev.set(v); err != nil {
			shown := v
			if strings.Contains(ev.name, "KEY") || strings.Contains(ev.name, "URL") {
				shown = ""
			}
			return &Error{Setting: ev.name, Value: shown, Reason: err.Error()}
		}
	}
	return nil
}

// lookup returns a variable's value and whether it is set and not blank.
func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	if strings.TrimSpace(v) == "" {
		return "", false
	}
	return strings.TrimSpace(v), true
}

func intSetter(dst *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("must be a whole number")
		}
		*dst = n
		return nil
	}
}

func boolSetter(dst *bool) func(string) error {
	return func(v string) error {
		switch strings.ToLower(v) {
		case "1", "true", "yes", "on":
			*dst = true
		case "0", "false", "no", "off":
			*dst = false
		default:
			return errors.New("must be true or false")
		}
		return nil
	}
}

func durationSetter(dst *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("must be a duration such as 30s or 10m")
		}
		*dst = d
		return nil
	}
}

// finish validates the configuration and derives the computed fields.
func (c *Config) finish(defaultModel string) error {
	switch c.Database.Type {
	case "sqlite":
		if strings.TrimSpace(c.Database.Path) == "" {
			return &Error{Setting: "AUTH_DB_PATH", Reason: "must not be empty"}
		}
		p, err := expandHome(c.Database.Path)
		if err != nil {
			return &Error{Setting: "AUTH_DB_PATH", Value: c.Database.Path, Reason: err.Error()}
		}
		c.Database.Path = p
	case "postgresql", "postgres":
		c.Database.Type = "postgresql"
		if c.Database.PostgresURL == "" {
			return &Error{Setting: "POSTGRESQL_URL", Reason: "is required when AUTH_DB_TYPE=postgresql"}
		}
	default:
		return &Error{Setting: "AUTH_DB_TYPE", Value: c.Database.Type, Reason: "must be sqlite or postgresql"}
	}
	if c.Database.MaxOpenConns < 1 || c.Database.MaxOpenConns > 1000 {
		return &Error{Setting: "AUTH_DB_MAX_OPEN_CONNS", Value: strconv.Itoa(c.Database.MaxOpenConns), Reason: "must be between 1 and 1000"}
	}
	if c.Server.Port < 0 || c.Server.Port > 65535 {
		return &Error{Setting: "SERVER_PORT", Value: strconv.Itoa(c.Server.Port), Reason: "must be between 0 and 65535"}
	}
	if strings.TrimSpace(c.Server.Host) == "" {
		return &Error{Setting: "SERVER_HOST", Reason: "must not be empty"}
	}
	if c.Server.AllowCORS && len(c.Server.Origins()) == 0 {
		return &Error{Setting: "CORS_ORIGINS", Reason: "must list at least one origin (or * for any) when ALLOW_CORS is true"}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"server.read_timeout", c.Server.ReadTimeout},
		{"server.write_timeout", c.Server.WriteTimeout},
		{"server.idle_timeout", c.Server.IdleTimeout},
		{"AUTH_SHUTDOWN_TIMEOUT", c.Server.ShutdownTimeout},
		{"AUTH_TENANT_IDLE_TIMEOUT", c.Policy.TenantIdleTimeout},
	} {
		if d.v <= 0 {
			return &Error{Setting: d.name, Value: d.v.String(), Reason: "must be positive"}
		}
	}
	if c.Policy.MaxRoleDepth < 1 || c.Policy.MaxRoleDepth > 9 {
		return &Error{Setting: "AUTH_MAX_ROLE_DEPTH", Value: strconv.Itoa(c.Policy.MaxRoleDepth), Reason: "must be between 1 and 9"}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return &Error{Setting: "AUTH_LOG_LEVEL", Value: c.Log.Level, Reason: "must be debug, info, warn or error"}
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		return &Error{Setting: "AUTH_LOG_FORMAT", Value: c.Log.Format, Reason: "must be json or text"}
	}
	switch c.JWT.Algorithm {
	case "HS256", "HS384", "HS512":
	default:
		return &Error{Setting: "JWT_ALGORITHM", Value: c.JWT.Algorithm, Reason: "must be HS256, HS384 or HS512"}
	}
	if c.JWT.AccessTokenExpireMin < 1 || c.JWT.AccessTokenExpireMin > 525600 {
		return &Error{Setting: "JWT_ACCESS_TOKEN_EXPIRE_MINUTES", Value: strconv.Itoa(c.JWT.AccessTokenExpireMin), Reason: "must be between 1 and 525600"}
	}
	if strings.TrimSpace(c.JWT.Issuer) == "" {
		return &Error{Setting: "AUTH_JWT_ISSUER", Reason: "must not be empty"}
	}
	if strings.TrimSpace(c.JWT.Audience) == "" {
		return &Error{Setting: "AUTH_JWT_AUDIENCE", Reason: "must not be empty"}
	}
	if s := c.JWT.Secret.Reveal(); s != "" && weakSecret(s) {
		return &Error{Setting: "JWT_SECRET_KEY", Reason: "is weak: use at least 32 characters of random material (e.g. `openssl rand -hex 32`), not a placeholder"}
	}
	if c.Keys.RotationGrace < 0 || c.Keys.RotationGrace > 90*24*time.Hour {
		return &Error{Setting: "AUTH_KEY_ROTATION_GRACE", Value: c.Keys.RotationGrace.String(), Reason: "must be between 0 and 2160h (90 days)"}
	}
	if c.Replica.RedisURL != "" {
		if err := validateStorageURL(c.Replica.RedisURL); err != nil || c.Replica.RedisURL == "memory://" {
			return &Error{Setting: "AUTH_WATCHER_REDIS_URL", Reason: "must be redis://host:port[/db]"}
		}
	}
	if ch := c.Replica.Channel; ch == "" || len(ch) > 256 || strings.IndexFunc(ch, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return &Error{Setting: "AUTH_WATCHER_CHANNEL", Value: ch, Reason: "must be 1-256 characters without spaces or control characters"}
	}
	if c.Replica.SyncInterval < 100*time.Millisecond || c.Replica.SyncInterval > time.Hour {
		return &Error{Setting: "AUTH_SYNC_INTERVAL", Value: c.Replica.SyncInterval.String(), Reason: "must be between 100ms and 1h"}
	}
	if c.Keys.CacheTTL <= 0 || c.Keys.CacheTTL > time.Hour {
		return &Error{Setting: "AUTH_KEY_CACHE_TTL", Value: c.Keys.CacheTTL.String(), Reason: "must be between 1ms and 1h"}
	}
	if err := c.finishRateLimit(); err != nil {
		return err
	}
	if err := c.finishServerHardening(); err != nil {
		return err
	}
	switch c.Env {
	case "production", "development":
	default:
		return &Error{Setting: "AUTH_ENV", Value: c.Env, Reason: "must be production or development"}
	}
	switch c.Audit.Decisions {
	case "all", "denied", "none":
	default:
		return &Error{Setting: "AUTH_AUDIT_DECISIONS", Value: c.Audit.Decisions, Reason: "must be all, denied or none"}
	}
	switch c.Audit.Overflow {
	case "block", "drop":
	default:
		return &Error{Setting: "AUTH_AUDIT_OVERFLOW", Value: c.Audit.Overflow, Reason: "must be block or drop"}
	}
	if c.Audit.QueueSize < 1 || c.Audit.QueueSize > 10_000_000 {
		return &Error{Setting: "AUTH_AUDIT_QUEUE_SIZE", Value: strconv.Itoa(c.Audit.QueueSize), Reason: "must be between 1 and 10000000"}
	}
	if c.Audit.RetentionDays < 0 || c.Audit.RetentionDays > 36500 {
		return &Error{Setting: "AUTH_AUDIT_RETENTION_DAYS", Value: strconv.Itoa(c.Audit.RetentionDays), Reason: "must be between 0 (keep forever) and 36500"}
	}
	if c.Audit.KeyFile != "" {
		p, err := expandHome(c.Audit.KeyFile)
		if err != nil {
			return &Error{Setting: "AUTH_AUDIT_KEY_FILE", Value: c.Audit.KeyFile, Reason: err.Error()}
		}
		c.Audit.KeyFile = p
	}
	if err := c.finishCheckpoints(); err != nil {
		return err
	}
	if c.Crypto.Enabled {
		if c.Crypto.Key == "" {
			return &Error{Setting: "ENCRYPTION_KEY", Reason: "is required when ENABLE_ENCRYPTION is true"}
		}
		if _, err := fieldcrypt.NewKeyring(c.Crypto.Key.Reveal()); err != nil {
			return &Error{Setting: "ENCRYPTION_KEY", Reason: "must be at least 32 characters of secret material (e.g. `openssl rand -hex 32`), not a placeholder"}
		}
		for _, p := range c.Crypto.Previous {
			if _, err := fieldcrypt.NewKeyring(p.Reveal()); err != nil {
				return &Error{Setting: "ENCRYPTION_KEY_PREVIOUS", Reason: "each key must be at least 32 characters of secret material"}
			}
		}
	}
	if err := c.finishOps(); err != nil {
		return err
	}
	if err := c.finishJWKS(); err != nil {
		return err
	}
	if err := c.finishTenants(); err != nil {
		return err
	}
	if c.Policy.ModelPath != "" {
		b, err := os.ReadFile(c.Policy.ModelPath)
		if err != nil {
			return &Error{Setting: "AUTH_MODEL_PATH", Value: c.Policy.ModelPath, Reason: err.Error()}
		}
		c.Policy.ModelText = string(b)
	} else {
		c.Policy.ModelText = defaultModel
	}
	return nil
}

// weakSecret reports whether a JWT secret is short or a known placeholder
// (the original service's default among them).
func weakSecret(s string) bool {
	return secret.Weak(s) || strings.Contains(strings.ToLower(s), "development")
}

func validateStorageURL(s string) error {
	if s == "memory://" {
		return nil
	}
	// url.Parse's errors quote the URL, password included: never use them.
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return errors.New("must be memory:// or redis://host:port[/db]")
	}
	if u.Hostname() == "" {
		return errors.New("must name a host, as in redis://host:port[/db]")
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return errors.New("the database after the host must be a number, as in redis://host:port/0")
		}
	}
	return nil
}

// finishCheckpoints validates the checkpoint settings: a positive interval
// (at least a second) needs the signing key; the sink defaults to the log.
func (c *Config) finishCheckpoints() error {
	a := &c.Audit
	if a.CheckpointInterval < 0 || (a.CheckpointInterval > 0 && a.CheckpointInterval < time.Second) {
		return &Error{Setting: "AUTH_AUDIT_CHECKPOINT_INTERVAL", Value: a.CheckpointInterval.String(), Reason: "must be 0 (off) or at least 1s"}
	}
	if a.CheckpointKeyFile != "" {
		p, err := expandHome(a.CheckpointKeyFile)
		if err != nil {
			return &Error{Setting: "AUTH_AUDIT_CHECKPOINT_KEY_FILE", Value: a.CheckpointKeyFile, Reason: err.Error()}
		}
		a.CheckpointKeyFile = p
	}
	if a.CheckpointInterval > 0 && a.CheckpointKeyFile == "" {
		return &Error{Setting: "AUTH_AUDIT_CHECKPOINT_INTERVAL", Value: a.CheckpointInterval.String(),
			Reason: "needs AUTH_AUDIT_CHECKPOINT_KEY_FILE (an Ed25519 private key: `auth-server audit checkpoint-keygen --out FILE`)"}
	}
	a.CheckpointSink = strings.TrimSpace(a.CheckpointSink)
	switch a.CheckpointSink {
	case "":
		a.CheckpointSink = "log"
	case "log", "stdout":
	default:
		p, err := expandHome(a.CheckpointSink)
		if err != nil {
			return &Error{Setting: "AUTH_AUDIT_CHECKPOINT_SINK", Value: a.CheckpointSink, Reason: err.Error()}
		}
		a.CheckpointSink = p
	}
	return nil
}

func expandHome(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot expand ~: %w", err)
		}
		return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
	}
	return p, nil
}
