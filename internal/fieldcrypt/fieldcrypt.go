// Package fieldcrypt encrypts names stored in the database (users, roles,
// permissions, role descriptions) with deterministic authenticated
// encryption: AES-SIV under a key derived per tenant (HKDF from the master
// key and the tenant id). Equal names in one tenant encrypt alike, so
// equality lookups, unique indexes and deletes keep working; equal names in
// two tenants do not. Every ciphertext names the master key it was made
// with, so old keys can be read while data is re-encrypted to a new one.
//
// Decryption fails closed: a value that does not authenticate (tampered,
// moved from another tenant, or made under an unknown key) is an error.
package fieldcrypt

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/tink-crypto/tink-go/v2/daead/subtle"

	"github.com/ourway/auth/internal/secret"
)

// Prefix starts every ciphertext: "enc1:<key id>:<base64url>".
const Prefix = "enc1:"

// MinKeyLen is the shortest master key accepted, in bytes.
const MinKeyLen = secret.MinLen

// Errors.
var (
	// ErrWeakKey is returned for a master key that is short or a placeholder.
	ErrWeakKey = errors.New("fieldcrypt: key must be at least 32 characters of secret material")
	// ErrUnknownKey is returned for a ciphertext made under a key that is not
	// configured (neither ENCRYPTION_KEY nor ENCRYPTION_KEY_PREVIOUS).
	ErrUnknownKey = errors.New("fieldcrypt: value was encrypted under a key that is not configured")
	// ErrTampered is returned for a value that does not authenticate.
	ErrTampered = errors.New("fieldcrypt: value does not authenticate (tampered, moved between tenants, or wrong key)")
	// ErrNotEncrypted is returned when a clear-text value is found where a
	// ciphertext is required.
	ErrNotEncrypted = errors.New("fieldcrypt: value is not encrypted")
)

type masterKey struct {
	id     string
	secret []byte
}

// Keyring holds the current master key and any previous ones.
type Keyring struct {
	current  masterKey
	byID     map[string]masterKey
	ciphers  sync.Map // tenant + "|" + key id -> *subtle.AESSIV
	previous []masterKey
}

// NewKeyring builds a keyring from the current master key and previous ones
// (still readable, never written).
func NewKeyring(current string, previous ...string) (*Keyring, error) {
	cur, err := newMaster(current)
	if err != nil {
		return nil, err
	}
	k := &Keyring{current: cur, byID: map[string]masterKey{cur.id: cur}}
	for _, p := range previous {
		if strings.TrimSpace(p) == "" {
			continue
		}
		m, err := newMaster(p)
		if err != nil {
			return nil, fmt.Errorf("previous key: %w", err)
		}
		if _, dup := k.byID[m.id]; dup {
			continue
		}
		k.byID[m.id] = m
		k.previous = append(k.previous, m)
	}
	return k, nil
}

func newMaster(s string) (masterKey, error) {
	if len(s) < MinKeyLen || secret.Weak(s) {
		return masterKey{}, ErrWeakKey
	}
	mac := hmac.New(sha256.New, []byte(s))
	mac.Write([]byte("auth-fieldcrypt key id v1"))
	return masterKey{id: hex.EncodeToString(mac.Sum(nil))[:8], secret: []byte(s)}, nil
}

// CurrentID is the id of the key new values are encrypted with.
func (k *Keyring) CurrentID() string { return k.current.id }

func (k *Keyring) cipher(tenant string, m masterKey) (*subtle.AESSIV, error) {
	id := tenant + "|" + m.id
	if c, ok := k.ciphers.Load(id); ok {
		return c.(*subtle.AESSIV), nil
	}
	key, err := hkdf.Key(sha256.New, m.secret, []byte("auth-fieldcrypt/v1"), "tenant:"+tenant, subtle.AESSIVKeySize)
	if err != nil {
		return nil, err
	}
	c, err := subtle.NewAESSIV(key)
	if err != nil {
		return nil, err
	}
	k.ciphers.Store(id, c)
	return c, nil
}

func aad(tenant string) []byte { return []byte("auth/v1|" + tenant) }

func (k *Keyring) encryptWith(m masterKey, tenant, plaintext string) (string, error) {
	c, err := k.cipher(tenant, m)
	if err != nil {
		return "", err
	}
	ct, err := c.EncryptDeterministically([]byte(plaintext), aad(tenant))
	if err != nil {
		return "", err
	}
	return Prefix + m.id + ":" + base64.RawURLEncoding.EncodeToString(ct), nil
}

// Encrypt encrypts a value of a tenant under the current key.
func (k *Keyring) Encrypt(tenant, plaintext string) (string, error) {
	return k.encryptWith(k.current, tenant, plaintext)
}

// Variants returns the value encrypted under every configured key, current
// first: while data is being re-encrypted a row may hold any of them.
func (k *Keyring) Variants(tenant, plaintext string) ([]string, error) {
	out := make([]string, 0, 1+len(k.previous))
	for _, m := range append([]masterKey{k.current}, k.previous...) {
		v, err := k.encryptWith(m, tenant, plaintext)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// IsEncrypted reports whether v has the shape of a ciphertext.
func IsEncrypted(v string) bool { return strings.HasPrefix(v, Prefix) }

// KeyID returns the key id a ciphertext names ("" for clear text).
func KeyID(v string) string {
	if !IsEncrypted(v) {
		return ""
	}
	id, _, ok := strings.Cut(v[len(Prefix):], ":")
	if !ok {
		return ""
	}
	return id
}

// IsCurrent reports whether v is encrypted under the current key.
func (k *Keyring) IsCurrent(v string) bool { return KeyID(v) == k.current.id }

// Decrypt returns the clear value of a tenant's ciphertext. It fails closed.
func (k *Keyring) Decrypt(tenant, v string) (string, error) {
	if !IsEncrypted(v) {
		return "", ErrNotEncrypted
	}
	id, body, ok := strings.Cut(v[len(Prefix):], ":")
	if !ok {
		return "", ErrTampered
	}
	m, ok := k.byID[id]
	if !ok {
		return "", ErrUnknownKey
	}
	// Only the canonical encoding is a stored value: the decoder skips line
	// breaks and ignores the spare bits of the last character, so other
	// spellings of the same bytes would authenticate too (and then escape
	// equality lookups and deletes, which compare the stored text).
	ct, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || base64.RawURLEncoding.EncodeToString(ct) != body {
		return "", ErrTampered
	}
	c, err := k.cipher(tenant, m)
	if err != nil {
		return "", err
	}
	pt, err := c.DecryptDeterministically(ct, aad(tenant))
	if err != nil {
		return "", ErrTampered
	}
	return string(pt), nil
}

// Reseal returns a tenant's stored value v encrypted under the current key;
// changed is false when it already is. A clear-text v is taken for the
// value itself only when clearText (the database is being migrated from
// clear text); otherwise, like any value that does not decrypt, it is an
// error (fail closed).
func (k *Keyring) Reseal(tenant, v string, clearText bool) (out string, changed bool, err error) {
	if k.IsCurrent(v) {
		return v, false, nil
	}
	plain := v
	if IsEncrypted(v) || !clearText {
		if plain, err = k.Decrypt(tenant, v); err != nil {
			return "", false, err
		}
	}
	if out, err = k.Encrypt(tenant, plain); err != nil {
		return "", false, err
	}
	return out, true, nil
}
