package config

import (
	"net"
	"strconv"
	"time"
)

// Ops is the operations section: database deadlines and circuit breakers,
// the audit queue's back-pressure bound, and the /metrics token.
type Ops struct {
	// DBTimeout bounds every database operation of a request (a write's
	// transaction, a tenant's load), waiting for the tenant's lock included.
	DBTimeout time.Duration `yaml:"db_timeout"`
	// DBBreakerErrors is the number of infrastructure failures (each no
	// more than DBBreakerTimeout after the previous one) that opens a
	// database circuit breaker.
	DBBreakerErrors int `yaml:"db_breaker_errors"`
	// DBBreakerTimeout is how long an open breaker fails fast before it
	// lets one probe through.
	DBBreakerTimeout time.Duration `yaml:"db_breaker_timeout"`
	// AuditBlockTimeout bounds how long a check waits for room in a full
	// audit queue with AUTH_AUDIT_OVERFLOW=block.
	AuditBlockTimeout time.Duration `yaml:"audit_block_timeout"`
	// MetricsToken, when set, is the bearer token GET /metrics requires.
	MetricsToken Secret `yaml:"-"`
	// Addr, when set, is the host:port of a listener of its own that
	// serves /metrics, /health and /ready; /metrics then leaves the API's.
	Addr string `yaml:"addr"`
}

// opsVars are the environment variables of the operations section.
func opsVars(c *Config) []envVar {
	return []envVar{
		{"AUTH_DB_TIMEOUT", durationSetter(&c.Ops.DBTimeout)},
		{"AUTH_DB_BREAKER_ERRORS", intSetter(&c.Ops.DBBreakerErrors)},
		{"AUTH_DB_BREAKER_TIMEOUT", durationSetter(&c.Ops.DBBreakerTimeout)},
		{"AUTH_AUDIT_BLOCK_TIMEOUT", durationSetter(&c.Ops.AuditBlockTimeout)},
		{"AUTH_METRICS_TOKEN", func(v string) error { c.Ops.MetricsToken = Secret(v); return nil }},
		{"AUTH_OPS_ADDR", func(v string) error { c.Ops.Addr = v; return nil }},
	}
}

// finishOps validates the operations section.
func (c *Config) finishOps() error {
	for _, d := range []struct {
		name     string
		v        time.Duration
		min, max time.Duration
	}{
		{"AUTH_DB_TIMEOUT", c.Ops.DBTimeout, 10 * time.Millisecond, 5 * time.Minute},
		{"AUTH_DB_BREAKER_TIMEOUT", c.Ops.DBBreakerTimeout, 10 * time.Millisecond, 10 * time.Minute},
		{"AUTH_AUDIT_BLOCK_TIMEOUT", c.Ops.AuditBlockTimeout, time.Millisecond, time.Minute},
	} {
		if d.v < d.min || d.v > d.max {
			return &Error{Setting: d.name, Value: d.v.String(), Reason: "must be between " + d.min.String() + " and " + d.max.String()}
		}
	}
	if c.Ops.DBBreakerErrors < 1 || c.Ops.DBBreakerErrors > 10000 {
		return &Error{Setting: "AUTH_DB_BREAKER_ERRORS", Value: strconv.Itoa(c.Ops.DBBreakerErrors), Reason: "must be between 1 and 10000"}
	}
	if a := c.Ops.Addr; a != "" {
		_, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			return &Error{Setting: "AUTH_OPS_ADDR", Value: a, Reason: "must be host:port (\"127.0.0.1:9090\", \":9090\", \"[::1]:9090\")"}
		}
		if a == c.Server.Addr() && c.Server.Port != 0 {
			return &Error{Setting: "AUTH_OPS_ADDR", Value: a, Reason: "must differ from the API's address (SERVER_HOST:SERVER_PORT)"}
		}
	}
	if t := c.Ops.MetricsToken.Reveal(); t != "" && len(t) < 16 {
		return &Error{Setting: "AUTH_METRICS_TOKEN", Reason: "must be at least 16 characters (e.g. `openssl rand -hex 16`)"}
	}
	return nil
}
