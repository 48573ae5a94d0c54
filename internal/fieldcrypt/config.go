package fieldcrypt

import "github.com/ourway/auth/internal/config"

// Config is the field-encryption section of the settings: secrets only,
// read from the environment.
type Config struct {
	Enabled bool          `yaml:"-" env:"ENABLE_ENCRYPTION"`
	Key     config.Secret `yaml:"-" env:"ENCRYPTION_KEY"`
	// Previous keys are still read (never written) while `auth-server
	// rekey` re-encrypts data to Key (comma-separated).
	Previous []config.Secret `yaml:"-" env:"ENCRYPTION_KEY_PREVIOUS"`

	keyring *Keyring
}

// Validate checks the keys when encryption is on and builds the keyring.
func (c *Config) Validate() error {
	c.keyring = nil
	if !c.Enabled {
		return nil
	}
	if c.Key == "" {
		return config.Invalid("Key", "", "is required when {Enabled} is true")
	}
	if _, err := newMaster(c.Key.Reveal()); err != nil {
		return config.Invalid("Key", "", "must be at least 32 characters of secret material (e.g. `openssl rand -hex 32`), not a placeholder")
	}
	prev := make([]string, 0, len(c.Previous))
	for _, p := range c.Previous {
		if _, err := newMaster(p.Reveal()); err != nil {
			return config.Invalid("Previous", "", "each key must be at least 32 characters of secret material")
		}
		prev = append(prev, p.Reveal())
	}
	k, err := NewKeyring(c.Key.Reveal(), prev...)
	if err != nil {
		return config.Invalid("Key", "", err.Error())
	}
	c.keyring = k
	return nil
}

// Keyring is the keyring of the validated section; nil when encryption is
// off (or the section was not validated).
func (c Config) Keyring() *Keyring { return c.keyring }
