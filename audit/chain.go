package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"

	"github.com/ourway/auth/internal/secret"
)

// Keyring holds the audit key, which lives outside the database: with it
// the service fingerprints tenants and users and seals each record into its
// tenant's chain, so that nobody with only database access can forge,
// edit, insert, reorder or drop a record unnoticed.
type Keyring struct {
	key []byte
	// pool holds keyed HMAC states for reuse.
	pool sync.Pool
}

// MinKeyLen is the shortest audit key accepted, in bytes.
const MinKeyLen = secret.MinLen

// ErrWeakKey is returned for an audit key that is too short or a placeholder.
var ErrWeakKey = errors.New("audit: key must be at least 32 bytes of secret material")

// NewKeyring returns a Keyring over key, refusing short or placeholder keys.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) < MinKeyLen || secret.Weak(string(key)) {
		return nil, ErrWeakKey
	}
	return &Keyring{key: append([]byte(nil), key...)}, nil
}

// macState is a keyed HMAC ready for reuse (Reset restores the keyed
// state without hashing the key again) and the buffer its input is
// assembled in.
type macState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func (k *Keyring) state() *macState {
	if m, ok := k.pool.Get().(*macState); ok {
		return m
	}
	return &macState{h: hmac.New(sha256.New, k.key), buf: make([]byte, 0, 1024)}
}

func (k *Keyring) release(m *macState) {
	if cap(m.buf) > 64<<10 {
		m.buf = make([]byte, 0, 1024) // a huge record is not kept for ever
	}
	k.pool.Put(m)
}

// part appends one length-prefixed field to the MAC input.
func (m *macState) part(p string) {
	m.buf = binary.BigEndian.AppendUint64(m.buf, uint64(len(p)))
	m.buf = append(m.buf, p...)
}

// partBytes is part for a field at hand as bytes.
func (m *macState) partBytes(p []byte) {
	m.buf = binary.BigEndian.AppendUint64(m.buf, uint64(len(p)))
	m.buf = append(m.buf, p...)
}

// hex returns the HMAC of the parts added since reset, hex-encoded (n
// characters of it).
func (m *macState) hex(n int) string {
	m.h.Reset()
	m.h.Write(m.buf)
	m.h.Sum(m.sum[:0])
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], m.sum[:])
	m.buf = m.buf[:0]
	return string(out[:n])
}

// macHex is the hex HMAC of the length-prefixed parts, cut to n characters.
func (k *Keyring) macHex(n int, parts ...string) string {
	m := k.state()
	for _, p := range parts {
		m.part(p)
	}
	s := m.hex(n)
	k.release(m)
	return s
}

// TenantFingerprint is the keyed fingerprint that identifies a tenant in
// the audit trail (derived from the tenant's key hash, never the key).
func (k *Keyring) TenantFingerprint(tenant string) string {
	return "t_" + k.macHex(32, "tenant", tenant)
}

// UserFingerprint is the keyed fingerprint of a user name within a tenant:
// a user's history is searchable by name without the name being stored.
func (k *Keyring) UserFingerprint(tenantFP, user string) string {
	if user == "" {
		return ""
	}
	return "u_" + k.macHex(32, "user", tenantFP, user)
}

// NameFingerprint is the keyed fingerprint of a role, permission or other
// name within a tenant, used in resources when names must not be stored.
func (k *Keyring) NameFingerprint(tenantFP, name string) string {
	return "n_" + k.macHex(32, "name", tenantFP, name)
}

// Record is one stored audit record.
type Record struct {
	ID        int64
	Tenant    string // tenant fingerprint
	Seq       int64  // 1, 2, 3 … per tenant, without gaps
	Time      time.Time
	User      string // user fingerprint or ""
	Action    Action
	Resource  string
	Success   bool
	Details   string // JSON object
	IP        string
	UserAgent string
	RequestID string
	MAC       string // hex HMAC over the previous MAC and this record

	// Version is not stored: the policy version a change produced (0 for
	// other records), with which a store tells a tenant's first change
	// from a later one whose chain went missing.
	Version int64

	// raw holds what a decision's record was queued with, before the
	// trail's writer fingerprints and encodes it (see Trail.RecordDecision).
	raw raw
}

// raw is the part of a queued record still to be fingerprinted and encoded.
type raw struct {
	set          bool
	tenant, user string
	details      any // map[string]any, or nil
}

// canonical adds the fields a record's MAC covers (everything but ID and
// MAC) to m, each length-prefixed so that no two records encode alike.
func (r *Record) canonical(m *macState) {
	success := "0"
	if r.Success {
		success = "1"
	}
	var seq, at [32]byte
	m.part("record/v1")
	m.part(r.Tenant)
	m.partBytes(strconv.AppendInt(seq[:0], r.Seq, 10))
	m.partBytes(appendTime(at[:0], r.Time))
	m.part(r.User)
	m.part(string(r.Action))
	m.part(r.Resource)
	m.part(success)
	m.part(r.Details)
	m.part(r.IP)
	m.part(r.UserAgent)
	m.part(r.RequestID)
}

// FormatTime renders a record time as stored and sealed: UTC, microseconds.
func FormatTime(t time.Time) string {
	var b [32]byte
	return string(appendTime(b[:0], t))
}

// timeLayout is the layout of FormatTime.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func appendTime(b []byte, t time.Time) []byte {
	return t.UTC().Truncate(time.Microsecond).AppendFormat(b, timeLayout)
}

// Genesis is the MAC a tenant's chain starts from.
func (k *Keyring) Genesis(tenantFP string) string {
	return k.macHex(64, "genesis/v1", tenantFP)
}

// Seal sets r.MAC from the previous record's MAC.
func (k *Keyring) Seal(prevMAC string, r *Record) {
	m := k.state()
	m.part(prevMAC)
	r.canonical(m)
	r.MAC = m.hex(64)
	k.release(m)
}

// HeadMAC seals a chain head (the last sequence number and MAC), so that
// dropping records from the end of a chain cannot go unnoticed.
func (k *Keyring) HeadMAC(tenantFP string, seq int64, mac string) string {
	return k.macHex(64, "head/v1", tenantFP, strconv.FormatInt(seq, 10), mac)
}

// AnchorMAC seals the point a chain resumes from after old records were
// purged by the retention policy.
func (k *Keyring) AnchorMAC(tenantFP string, seq int64, mac string) string {
	return k.macHex(64, "anchor/v1", tenantFP, strconv.FormatInt(seq, 10), mac)
}

// Head is the stored end of a tenant's chain, and where it starts.
type Head struct {
	Tenant  string
	Seq     int64
	MAC     string
	HeadMAC string
	// BaseSeq and BaseMAC are the sequence number and MAC of the last
	// record purged by retention (0 and the genesis MAC when none was).
	BaseSeq     int64
	BaseMAC     string
	BaseHeadMAC string
}

// Problem describes the first break found in a chain.
type Problem struct {
	Tenant string
	Seq    int64
	ID     int64
	Reason string
}

func (p *Problem) Error() string {
	if p.ID != 0 {
		return fmt.Sprintf("tenant %s: record seq %d (id %d): %s", p.Tenant, p.Seq, p.ID, p.Reason)
	}
	return fmt.Sprintf("tenant %s: seq %d: %s", p.Tenant, p.Seq, p.Reason)
}

// ErrChainMissing is returned when a record is to be appended for a tenant
// that has changed before but has no chain head: its chain was deleted.
// The store refuses to start a new chain silently; an operator starts one
// with `auth-server audit reset`, which records the reset.
var ErrChainMissing = errors.New("audit: the tenant's audit chain is missing")

// ChainMissingError names the tenant (its fingerprint) whose chain is
// missing. It matches ErrChainMissing.
type ChainMissingError struct {
	Tenant string
}

func (e *ChainMissingError) Error() string {
	return fmt.Sprintf("audit: tenant %s has changed before but its audit chain is missing (deleted?); "+
		"nothing is recorded for it until an operator runs `auth-server audit reset`", e.Tenant)
}

// Unwrap lets errors.Is(err, ErrChainMissing) match.
func (e *ChainMissingError) Unwrap() error { return ErrChainMissing }

// Verifier checks one tenant's chain record by record.
type Verifier struct {
	k      *Keyring
	head   Head
	prev   string
	seq    int64
	failed *Problem
}

// NewVerifier starts verifying the chain that head describes. It checks the
// head's own seals first.
func (k *Keyring) NewVerifier(head Head) (*Verifier, error) {
	v := &Verifier{k: k, head: head}
	if !hmac.Equal([]byte(head.HeadMAC), []byte(k.HeadMAC(head.Tenant, head.Seq, head.MAC))) {
		return nil, &Problem{Tenant: head.Tenant, Seq: head.Seq, Reason: "chain head does not authenticate (edited head, or another audit key)"}
	}
	v.prev, v.seq = k.Genesis(head.Tenant), 0
	if head.BaseSeq > 0 {
		if !hmac.Equal([]byte(head.BaseHeadMAC), []byte(k.AnchorMAC(head.Tenant, head.BaseSeq, head.BaseMAC))) {
			return nil, &Problem{Tenant: head.Tenant, Seq: head.BaseSeq, Reason: "retention anchor does not authenticate"}
		}
		v.prev, v.seq = head.BaseMAC, head.BaseSeq
	}
	return v, nil
}

// Next checks the next record in sequence order.
func (v *Verifier) Next(r *Record) error {
	if v.failed != nil {
		return v.failed
	}
	fail := func(reason string) error {
		v.failed = &Problem{Tenant: v.head.Tenant, Seq: r.Seq, ID: r.ID, Reason: reason}
		return v.failed
	}
	if r.Tenant != v.head.Tenant {
		return fail("record belongs to another tenant")
	}
	switch {
	case r.Seq == v.seq:
		return fail("duplicate sequence number (inserted record)")
	case r.Seq < v.seq:
		return fail("sequence out of order (reordered records)")
	case r.Seq > v.seq+1:
		return fail(fmt.Sprintf("gap: records %d to %d are missing (deleted or reordered records)", v.seq+1, r.Seq-1))
	}
	want := *r
	v.k.Seal(v.prev, &want)
	if !hmac.Equal([]byte(want.MAC), []byte(r.MAC)) {
		return fail("MAC mismatch (modified, inserted or reordered record)")
	}
	v.prev, v.seq = r.MAC, r.Seq
	return nil
}

// Finish checks that the chain ended where its head says.
func (v *Verifier) Finish() error {
	if v.failed != nil {
		return v.failed
	}
	if v.seq != v.head.Seq || v.prev != v.head.MAC {
		return &Problem{Tenant: v.head.Tenant, Seq: v.seq + 1,
			Reason: fmt.Sprintf("chain ends at seq %d but its head says %d (truncated tail)", v.seq, v.head.Seq)}
	}
	return nil
}

// CanonicalDetails encodes details as a JSON object with sorted keys,
// exactly as encoding/json does.
func CanonicalDetails(d map[string]any) string {
	if len(d) == 0 {
		return "{}"
	}
	if s, ok := canonicalSmall(d); ok {
		return s
	}
	b, err := json.Marshal(d) // encoding/json sorts map keys
	if err != nil {
		return "{}"
	}
	return string(b)
}

// canonicalSmall encodes the common details (a few keys; booleans,
// integers and plain strings) without reflection, byte for byte as
// encoding/json would; ok is false for anything else, which json.Marshal
// encodes.
func canonicalSmall(d map[string]any) (string, bool) {
	var keysBuf [8]string
	if len(d) > len(keysBuf) {
		return "", false
	}
	keys := keysBuf[:0]
	for k := range d {
		if !plainJSON(k) {
			return "", false
		}
		keys = append(keys, k)
	}
	// Insertion sort: a handful of keys.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	var buf [256]byte
	b := append(buf[:0], '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), k...), '"', ':')
		switch v := d[k].(type) {
		case bool:
			b = strconv.AppendBool(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case string:
			if !plainJSON(v) {
				return "", false
			}
			b = append(append(append(b, '"'), v...), '"')
		default:
			return "", false
		}
	}
	return string(append(b, '}')), true
}

// plainJSON reports whether encoding/json writes s between quotes as it
// is: printable ASCII without the characters it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
