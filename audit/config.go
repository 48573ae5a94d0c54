package audit

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/ourway/auth/internal/config"
)

// Config is the audit-trail section of the settings (audit:).
type Config struct {
	// Key seals the audit chain and keys fingerprints; it must live outside
	// the database. KeyFile names a file holding it instead.
	Key     config.Secret `yaml:"-" env:"AUTH_AUDIT_KEY"`
	KeyFile string        `yaml:"key_file" env:"AUTH_AUDIT_KEY_FILE"`
	// Decisions is all, denied or none (see Decisions); Overflow is block
	// or drop (see Overflow).
	Decisions     string `yaml:"decisions" env:"AUTH_AUDIT_DECISIONS,lower"`
	Overflow      string `yaml:"overflow" env:"AUTH_AUDIT_OVERFLOW,lower"`
	QueueSize     int    `yaml:"queue_size" env:"AUTH_AUDIT_QUEUE_SIZE"`
	RetentionDays int    `yaml:"retention_days" env:"AUTH_AUDIT_RETENTION_DAYS"`
	// CheckpointKeyFile names the PEM Ed25519 private key that signs chain
	// checkpoints (kept outside the database). CheckpointInterval is how
	// often the server writes them (0: never); CheckpointSink is where:
	// a file path (JSON lines appended and synced), "stdout" or "log".
	CheckpointKeyFile  string        `yaml:"checkpoint_key_file" env:"AUTH_AUDIT_CHECKPOINT_KEY_FILE"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval" env:"AUTH_AUDIT_CHECKPOINT_INTERVAL"`
	CheckpointSink     string        `yaml:"checkpoint_sink" env:"AUTH_AUDIT_CHECKPOINT_SINK"`
	// Log says which stored records are also written to the service's log
	// (LogAll, LogChanges or LogNone); "" leaves it to DefaultLog.
	Log string `yaml:"log" env:"AUTH_AUDIT_LOG,lower"`
}

// Which stored records are also written to the log, one line each (for a
// SIEM that reads the log): every record, the changes only, or none. The
// database keeps every record whatever this says.
const (
	LogAll     = "all"
	LogChanges = "changes"
	LogNone    = "none"
)

// DefaultLog fills an unset Log: every record in production, the changes
// only in development, where a terminal shows the log and a line for every
// check would bury everything else.
func (c *Config) DefaultLog(development bool) {
	if c.Log != "" {
		return
	}
	c.Log = LogAll
	if development {
		c.Log = LogChanges
	}
}

// Validate checks the section; it expands a leading ~ of its paths and
// defaults the checkpoint sink to the log.
func (c *Config) Validate() error {
	var errs []error
	switch Decisions(c.Decisions) {
	case DecisionsAll, DecisionsDenied, DecisionsNone:
	default:
		errs = append(errs, config.Invalid("Decisions", c.Decisions, "must be all, denied or none"))
	}
	switch Overflow(c.Overflow) {
	case Block, Drop:
	default:
		errs = append(errs, config.Invalid("Overflow", c.Overflow, "must be block or drop"))
	}
	switch c.Log {
	case "", LogAll, LogChanges, LogNone:
	default:
		errs = append(errs, config.Invalid("Log", c.Log, "must be all, changes or none"))
	}
	if c.QueueSize < 1 || c.QueueSize > 10_000_000 {
		errs = append(errs, config.Invalid("QueueSize", strconv.Itoa(c.QueueSize), "must be between 1 and 10000000"))
	}
	if c.RetentionDays < 0 || c.RetentionDays > 36500 {
		errs = append(errs, config.Invalid("RetentionDays", strconv.Itoa(c.RetentionDays), "must be between 0 (keep forever) and 36500"))
	}
	if c.KeyFile != "" {
		if p, err := config.ExpandHome(c.KeyFile); err != nil {
			errs = append(errs, config.Invalid("KeyFile", c.KeyFile, err.Error()))
		} else {
			c.KeyFile = p
		}
	}
	return errors.Join(append(errs, c.validateCheckpoints())...)
}

// validateCheckpoints checks the checkpoint settings: a positive interval
// (at least a second) needs the signing key; the sink defaults to the log.
func (c *Config) validateCheckpoints() error {
	if c.CheckpointInterval < 0 || (c.CheckpointInterval > 0 && c.CheckpointInterval < time.Second) {
		return config.Invalid("CheckpointInterval", c.CheckpointInterval.String(), "must be 0 (off) or at least 1s")
	}
	if c.CheckpointKeyFile != "" {
		p, err := config.ExpandHome(c.CheckpointKeyFile)
		if err != nil {
			return config.Invalid("CheckpointKeyFile", c.CheckpointKeyFile, err.Error())
		}
		c.CheckpointKeyFile = p
	}
	if c.CheckpointInterval > 0 && c.CheckpointKeyFile == "" {
		return config.Invalid("CheckpointInterval", c.CheckpointInterval.String(),
			"needs {CheckpointKeyFile} (an Ed25519 private key: `auth-server audit checkpoint-keygen --out FILE`)")
	}
	c.CheckpointSink = strings.TrimSpace(c.CheckpointSink)
	switch c.CheckpointSink {
	case "":
		c.CheckpointSink = "log"
	case "log", "stdout":
	default:
		p, err := config.ExpandHome(c.CheckpointSink)
		if err != nil {
			return config.Invalid("CheckpointSink", c.CheckpointSink, err.Error())
		}
		c.CheckpointSink = p
	}
	return nil
}

// Backpressure bounds how long a check waits for room in a full audit
// queue (in the ops: section of the settings).
type Backpressure struct {
	// AuditBlockTimeout bounds how long a check waits for room in a full
	// audit queue with overflow block.
	AuditBlockTimeout time.Duration `yaml:"audit_block_timeout" env:"AUTH_AUDIT_BLOCK_TIMEOUT"`
}

// Validate checks the bound.
func (b *Backpressure) Validate() error {
	if b.AuditBlockTimeout < time.Millisecond || b.AuditBlockTimeout > time.Minute {
		return config.Invalid("AuditBlockTimeout", b.AuditBlockTimeout.String(), "must be between 1ms and 1m0s")
	}
	return nil
}
