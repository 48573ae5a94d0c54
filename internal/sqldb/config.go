package sqldb

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ourway/auth/internal/config"
)

// Config is the storage section of the settings (database:).
type Config struct {
	// Type is sqlite or postgresql; "postgres" is accepted as another name
	// of postgresql (Validate makes it postgresql).
	Type           string        `yaml:"type" env:"AUTH_DB_TYPE,lower"`
	Path           string        `yaml:"path" env:"AUTH_DB_PATH"`
	PostgresURL    config.Secret `yaml:"-" env:"POSTGRESQL_URL"`
	MaxOpenConns   int           `yaml:"max_open_conns" env:"AUTH_DB_MAX_OPEN_CONNS"`
	MigrateOnStart bool          `yaml:"migrate_on_start" env:"AUTH_MIGRATE_ON_START"`
}

// Validate checks the section; it expands a leading ~ of the SQLite path.
func (c *Config) Validate() error {
	var errs []error
	switch c.Type {
	case "sqlite":
		if strings.TrimSpace(c.Path) == "" {
			errs = append(errs, config.Invalid("Path", "", "must not be empty"))
			break
		}
		p, err := config.ExpandHome(c.Path)
		if err != nil {
			errs = append(errs, config.Invalid("Path", c.Path, err.Error()))
			break
		}
		c.Path = p
	case "postgresql", "postgres":
		c.Type = string(Postgres)
		if c.PostgresURL == "" {
			errs = append(errs, config.Invalid("PostgresURL", "", "is required when {Type}=postgresql (or its other name, postgres)"))
		} else if err := ValidatePostgresURL(c.PostgresURL.Reveal()); err != nil {
			errs = append(errs, config.Invalid("PostgresURL", "", err.Error()))
		}
	default:
		errs = append(errs, config.Invalid("Type", c.Type, "must be sqlite or postgresql (postgres is accepted as another name of postgresql)"))
	}
	if c.MaxOpenConns < 1 || c.MaxOpenConns > 1000 {
		errs = append(errs, config.Invalid("MaxOpenConns", strconv.Itoa(c.MaxOpenConns), "must be between 1 and 1000"))
	}
	return errors.Join(errs...)
}

// Warnings points out a PostgreSQL URL that is set while the database is
// SQLite: it is not used.
func (c *Config) Warnings() []error {
	if c.Type == string(SQLite) && strings.TrimSpace(c.PostgresURL.Reveal()) != "" {
		return []error{config.Invalid("PostgresURL", "", "is set but {Type} is sqlite, so it is not used: the SQLite database "+
			c.Path+" is; set {Type}=postgresql to use PostgreSQL")}
	}
	return nil
}

// postgresExample is how a PostgreSQL URL looks, for the errors.
const postgresExample = "postgres://user:password@host:5432/dbname"

// ValidatePostgresURL checks the shape of a PostgreSQL connection string:
// a URL (postgres:// or postgresql://) or key=value settings, naming a host
// and a database. Its errors say what is wrong and never quote the string,
// which may carry a password.
func ValidatePostgresURL(s string) error {
	s = strings.TrimSpace(s)
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		if scheme != "postgres" && scheme != "postgresql" {
			shown := scheme
			if len(shown) > 20 || strings.ContainsAny(shown, "@:/ ") {
				shown = "" // it may be something else than a scheme
			}
			return errors.New("must start with postgres:// or postgresql:// (it starts with " + strconvQuote(shown) + "://), as in " + postgresExample)
		}
		// url.Parse's errors quote the URL, password included: never use them.
		u, err := url.Parse(s)
		if err != nil {
			return errors.New("is not a valid URL: percent-encode special characters of the user name and password (@ as %40, : as %3A, / as %2F), as in " + postgresExample)
		}
		q := u.Query()
		if u.Hostname() == "" && q.Get("host") == "" {
			return errors.New("names no host: put it after the scheme (and user:password@), as in " + postgresExample)
		}
		if strings.Trim(u.Path, "/") == "" && q.Get("dbname") == "" {
			return errors.New("names no database: add /dbname after the host, as in " + postgresExample)
		}
		return nil
	}
	if !strings.Contains(s, "=") {
		return errors.New("has no scheme: it must be a URL starting with postgres:// or postgresql://, as in " + postgresExample +
			", or key=value settings, as in host=db.internal port=5432 dbname=auth user=auth")
	}
	kv, err := parseKeyValues(s)
	if err != nil {
		return err
	}
	if kv["host"] == "" && kv["hostaddr"] == "" {
		return errors.New("names no host: add host=..., as in host=db.internal port=5432 dbname=auth user=auth")
	}
	if kv["dbname"] == "" {
		return errors.New("names no database: add dbname=..., as in host=db.internal port=5432 dbname=auth user=auth")
	}
	return nil
}

// strconvQuote quotes s, or says it is not shown.
func strconvQuote(s string) string {
	if s == "" {
		return "something else"
	}
	return strconv.Quote(s)
}

// parseKeyValues reads libpq key=value settings (values may be quoted
// with single quotes, with \' and \\ escapes). Its errors name keys, never
// values.
func parseKeyValues(s string) (map[string]string, error) {
	out := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			return out, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, errors.New("is not a list of key=value settings: a word has no =, as in host=db.internal dbname=auth")
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" || strings.ContainsAny(key, " \t") {
			return nil, errors.New("is not a list of key=value settings: each setting is key=value, as in host=db.internal dbname=auth")
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		var v strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for len(s) > 0 {
				ch := s[0]
				s = s[1:]
				if ch == '\\' && len(s) > 0 {
					v.WriteByte(s[0])
					s = s[1:]
					continue
				}
				if ch == '\'' {
					closed = true
					break
				}
				v.WriteByte(ch)
			}
			if !closed {
				return nil, errors.New("the value of " + key + " has an opening quote and no closing one")
			}
		} else {
			end := strings.IndexAny(s, " \t\n\r")
			if end < 0 {
				end = len(s)
			}
			v.WriteString(s[:end])
			s = s[end:]
		}
		out[key] = v.String()
	}
}

// Options are the options Open takes for this section.
func (c Config) Options() Options {
	return Options{Dialect: Dialect(c.Type), Path: c.Path, URL: c.PostgresURL.Reveal(), MaxOpenConns: c.MaxOpenConns}
}

// Resilience bounds the database calls of a request and sets the circuit
// breakers that guard them (in the ops: section of the settings).
type Resilience struct {
	// DBTimeout bounds every database operation of a request (a write's
	// transaction, a tenant's load), waiting for the tenant's lock included.
	DBTimeout time.Duration `yaml:"db_timeout" env:"AUTH_DB_TIMEOUT"`
	// DBBreakerErrors is the number of infrastructure failures (each no
	// more than DBBreakerTimeout after the previous one) that opens a
	// database circuit breaker.
	DBBreakerErrors int `yaml:"db_breaker_errors" env:"AUTH_DB_BREAKER_ERRORS"`
	// DBBreakerTimeout is how long an open breaker fails fast before it
	// lets one probe through.
	DBBreakerTimeout time.Duration `yaml:"db_breaker_timeout" env:"AUTH_DB_BREAKER_TIMEOUT"`
}

// Validate checks the deadlines and the breaker settings.
func (r *Resilience) Validate() error {
	var errs []error
	for _, d := range []struct {
		field    string
		v        time.Duration
		min, max time.Duration
	}{
		{"DBTimeout", r.DBTimeout, 10 * time.Millisecond, 5 * time.Minute},
		{"DBBreakerTimeout", r.DBBreakerTimeout, 10 * time.Millisecond, 10 * time.Minute},
	} {
		if d.v < d.min || d.v > d.max {
			errs = append(errs, config.Invalid(d.field, d.v.String(), "must be between "+d.min.String()+" and "+d.max.String()))
		}
	}
	if r.DBBreakerErrors < 1 || r.DBBreakerErrors > 10000 {
		errs = append(errs, config.Invalid("DBBreakerErrors", strconv.Itoa(r.DBBreakerErrors), "must be between 1 and 10000"))
	}
	return errors.Join(errs...)
}
