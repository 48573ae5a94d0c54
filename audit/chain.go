package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ourway/auth/internal/secret"
)

// Keyring holds the audit key, which lives outside the database: with it
// the service fingerprints tenants and users and seals each record into its
// tenant's chain, so that nobody with only database access can forge,
// edit, insert, reorder or drop a record unnoticed.
type Keyring struct {
	key []byte
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

func (k *Keyring) mac(parts ...[]byte) []byte {
	h := hmac.New(sha256.New, k.key)
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

// TenantFingerprint is the keyed fingerprint that identifies a tenant in
// the audit trail (derived from the tenant's key hash, never the key).
func (k *Keyring) TenantFingerprint(tenant string) string {
	return "t_" + hex.EncodeToString(k.mac([]byte("tenant"), []byte(tenant)))[:32]
}

// UserFingerprint is the keyed fingerprint of a user name within a tenant:
// a user's history is searchable by name without the name being stored.
func (k *Keyring) UserFingerprint(tenantFP, user string) string {
	if user == "" {
		return ""
	}
	return "u_" + hex.EncodeToString(k.mac([]byte("user"), []byte(tenantFP), []byte(user)))[:32]
}

// NameFingerprint is the keyed fingerprint of a role, permission or other
// name within a tenant, used in resources when names must not be stored.
func (k *Keyring) NameFingerprint(tenantFP, name string) string {
	return "n_" + hex.EncodeToString(k.mac([]byte("name"), []byte(tenantFP), []byte(name)))[:32]
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
}

// canonical is the byte string a record's MAC covers (everything but ID and
// MAC), each field length-prefixed so that no two records encode alike.
func (r *Record) canonical() [][]byte {
	success := "0"
	if r.Success {
		success = "1"
	}
	return [][]byte{
		[]byte("record/v1"), []byte(r.Tenant), []byte(strconv.FormatInt(r.Seq, 10)),
		[]byte(FormatTime(r.Time)), []byte(r.User), []byte(r.Action), []byte(r.Resource),
		[]byte(success), []byte(r.Details), []byte(r.IP), []byte(r.UserAgent), []byte(r.RequestID),
	}
}

// FormatTime renders a record time as stored and sealed: UTC, microseconds.
func FormatTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z")
}

// Genesis is the MAC a tenant's chain starts from.
func (k *Keyring) Genesis(tenantFP string) string {
	return hex.EncodeToString(k.mac([]byte("genesis/v1"), []byte(tenantFP)))
}

// Seal sets r.MAC from the previous record's MAC.
func (k *Keyring) Seal(prevMAC string, r *Record) {
	parts := append([][]byte{[]byte(prevMAC)}, r.canonical()...)
	r.MAC = hex.EncodeToString(k.mac(parts...))
}

// HeadMAC seals a chain head (the last sequence number and MAC), so that
// dropping records from the end of a chain cannot go unnoticed.
func (k *Keyring) HeadMAC(tenantFP string, seq int64, mac string) string {
	return hex.EncodeToString(k.mac([]byte("head/v1"), []byte(tenantFP), []byte(strconv.FormatInt(seq, 10)), []byte(mac)))
}

// AnchorMAC seals the point a chain resumes from after old records were
// purged by the retention policy.
func (k *Keyring) AnchorMAC(tenantFP string, seq int64, mac string) string {
	return hex.EncodeToString(k.mac([]byte("anchor/v1"), []byte(tenantFP), []byte(strconv.FormatInt(seq, 10)), []byte(mac)))
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

// CanonicalDetails encodes details as a JSON object with sorted keys.
func CanonicalDetails(d map[string]any) string {
	if len(d) == 0 {
		return "{}"
	}
	b, err := json.Marshal(d) // encoding/json sorts map keys
	if err != nil {
		return "{}"
	}
	return string(b)
}
