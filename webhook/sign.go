// Package webhook signs, checks and delivers workflow webhooks, and verifies
// them on the receiving side.
//
// A delivery is a POST of a JSON Payload with three headers: HeaderID (the
// run id, the same on every retry: receivers deduplicate on it),
// HeaderTimestamp (unix seconds) and HeaderSignature (one or, during a secret
// rotation, two "v1=<hex>" entries, each an HMAC-SHA256 of
// timestamp + "." + body keyed with a secret). Receivers call Verify or
// VerifyRequest.
//
// Targets are checked by a Guard: only http and https, and no host that
// resolves to a private, loopback, link-local or otherwise internal address
// unless it is allow-listed. A Sender checks again when it dials and
// connects only to the address it checked.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a delivery.
const (
	// HeaderID carries the run id: the same on every retry and re-run of
	// a run, so that receivers can deduplicate on it.
	HeaderID = "Auth-Webhook-Id"
	// HeaderTimestamp carries the time of the attempt in unix seconds.
	HeaderTimestamp = "Auth-Webhook-Timestamp"
	// HeaderSignature carries "v1=<hex>" entries, comma-separated.
	HeaderSignature = "Auth-Webhook-Signature"
)

// SecretPrefix starts every secret made by NewSecret.
const SecretPrefix = "whsec_"

// signatureScheme names the only signature version: HMAC-SHA256 of
// timestamp + "." + body.
const signatureScheme = "v1"

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// MaxBodyBytes is the largest body VerifyRequest reads.
const MaxBodyBytes = 1 << 20

// Errors returned by Verify and VerifyRequest; test for them with errors.Is.
var (
	// ErrMissingHeader: the timestamp or the signature header is absent.
	ErrMissingHeader = errors.New("webhook: missing header")
	// ErrBadTimestamp: the timestamp is not a non-negative decimal integer.
	ErrBadTimestamp = errors.New("webhook: malformed timestamp")
	// ErrTooOld: the timestamp is older than the tolerance (a replay, or a
	// delivery held up too long).
	ErrTooOld = errors.New("webhook: timestamp too old")
	// ErrTooNew: the timestamp is further in the future than the tolerance.
	ErrTooNew = errors.New("webhook: timestamp too far in the future")
	// ErrNoSignature: the signature header holds no well-formed v1 entry.
	ErrNoSignature = errors.New("webhook: no v1 signature")
	// ErrBadSignature: no v1 entry matches the body and the secret.
	ErrBadSignature = errors.New("webhook: signature does not match")
	// ErrNoSecret: the secret to verify with is empty.
	ErrNoSecret = errors.New("webhook: empty secret")
	// ErrBodyTooLarge: the request body is longer than MaxBodyBytes.
	ErrBodyTooLarge = errors.New("webhook: body too large")
)

// NewSecret returns a new signing secret: SecretPrefix followed by the
// unpadded base64url encoding of 32 random bytes.
func NewSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("webhook: new secret: %w", err)
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// mac returns the HMAC-SHA256 of timestamp + "." + body keyed with secret.
func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	io.WriteString(m, timestamp)
	io.WriteString(m, ".")
	m.Write(body)
	return m.Sum(nil)
}

// Timestamp formats t as the HeaderTimestamp value: decimal unix seconds.
func Timestamp(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// Sign returns the HeaderSignature value for body sent at ts: one
// "v1=<hex>" entry per non-empty secret, in order, comma-separated (the
// current secret first, then the previous one during a rotation). It
// returns "" when no secret is given.
func Sign(secrets []string, ts time.Time, body []byte) string {
	stamp := Timestamp(ts)
	var entries []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		entries = append(entries, signatureScheme+"="+hex.EncodeToString(mac(s, stamp, body)))
	}
	return strings.Join(entries, ",")
}

// Verify checks a delivery's headers h and raw body against secret at
// time now:
//
//  1. both HeaderTimestamp and HeaderSignature must be present
//     (ErrMissingHeader);
//  2. the timestamp must be a non-negative decimal integer (ErrBadTimestamp);
//  3. it must be within tolerance of now (ErrTooOld, ErrTooNew); a tolerance
//     of 0 or less means DefaultTolerance;
//  4. the HMAC-SHA256 of the timestamp header as sent, ".", and body, keyed
//     with secret, must equal, compared in constant time, at least one v1
//     entry of the signature header (ErrNoSignature when there is no
//     well-formed v1 entry, ErrBadSignature when none matches).
//
// Entries of other schemes are ignored. HeaderID is not checked: it is
// covered by the signed body's run_id.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return ErrNoSecret
	}
	stamp, sigs := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if stamp == "" {
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderTimestamp)
	}
	if sigs == "" {
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignature)
	}
	ts, err := parseTimestamp(stamp)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	tol := int64(tolerance / time.Second)
	switch age := now.Unix() - ts; {
	case age > tol:
		return fmt.Errorf("%w: %ds old, tolerance %s", ErrTooOld, age, tolerance)
	case age < -tol:
		return fmt.Errorf("%w: %ds ahead, tolerance %s", ErrTooNew, -age, tolerance)
	}
	want := mac(secret, stamp, body)
	found := false
	for entry := range strings.SplitSeq(sigs, ",") {
		scheme, value, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok || scheme != signatureScheme {
			continue
		}
		got, err := hex.DecodeString(value)
		if err != nil || len(got) != sha256.Size {
			continue
		}
		found = true
		if hmac.Equal(got, want) {
			return nil
		}
	}
	if !found {
		return ErrNoSignature
	}
	return ErrBadSignature
}

// parseTimestamp reads a HeaderTimestamp value: decimal digits only.
func parseTimestamp(s string) (int64, error) {
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q", ErrBadTimestamp, s)
		}
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadTimestamp, s)
	}
	return ts, nil
}

// VerifyRequest reads r's body (at most MaxBodyBytes, else ErrBodyTooLarge)
// and verifies it with Verify against the current time. It returns the
// body only when it is authentic.
func VerifyRequest(secret string, r *http.Request, tolerance time.Duration) ([]byte, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1)); err != nil {
			return nil, fmt.Errorf("webhook: read body: %w", err)
		}
	}
	if len(body) > MaxBodyBytes {
		return nil, ErrBodyTooLarge
	}
	if err := Verify(secret, r.Header, body, time.Now(), tolerance); err != nil {
		return nil, err
	}
	return body, nil
}
