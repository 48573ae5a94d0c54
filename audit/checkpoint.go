package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// A checkpoint is a signed statement of where a tenant's chain ended at a
// time: its fingerprint, the head's sequence number and MAC. It is signed
// with an Ed25519 key kept outside the database (and apart from the audit
// key), and written outside the database, so that rolling a chain back to
// an older state, truncating it or deleting it can be shown later even by
// someone who held the database and the audit key.

// CheckpointFormat names the checkpoint line format; it is the "type" of
// every line and the first part of what is signed.
const CheckpointFormat = "auth.audit.checkpoint/v1"

// Checkpoint is one signed chain head.
type Checkpoint struct {
	Tenant string // tenant fingerprint
	Seq    int64
	MAC    string // MAC of the record at Seq (the genesis MAC at 0)
	Time   time.Time
	// KeyID is the fingerprint of the signing public key (KeyID).
	KeyID     string
	PublicKey ed25519.PublicKey
	Signature []byte
}

// Errors of checkpoint keys and signatures.
var (
	// ErrCheckpointKey is returned for a key file that holds no Ed25519 key.
	ErrCheckpointKey = errors.New("audit: not an Ed25519 key in PEM (PKCS #8 private key or PKIX public key)")
	// ErrCheckpointSignature is returned for a checkpoint whose signature
	// does not verify under the trusted public key.
	ErrCheckpointSignature = errors.New("audit: checkpoint signature does not verify")
	// ErrCheckpointSigner is returned for a checkpoint signed by another
	// key than the trusted one.
	ErrCheckpointSigner = errors.New("audit: checkpoint signed by another key")
)

// KeyID is the fingerprint of a checkpoint public key: "ed25519:" and the
// first 16 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:16])
}

// CheckpointSigner signs checkpoints with an Ed25519 private key.
type CheckpointSigner struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
}

// NewCheckpointSigner returns a signer over priv.
func NewCheckpointSigner(priv ed25519.PrivateKey) *CheckpointSigner {
	pub := priv.Public().(ed25519.PublicKey)
	return &CheckpointSigner{priv: priv, pub: pub, id: KeyID(pub)}
}

// ParseCheckpointKey reads a PEM private key ("PRIVATE KEY", PKCS #8), as
// written by `auth-server audit checkpoint-keygen` or
// `openssl genpkey -algorithm ed25519`.
func ParseCheckpointKey(pemBytes []byte) (*CheckpointSigner, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, ErrCheckpointKey
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpointKey, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, ErrCheckpointKey
	}
	return NewCheckpointSigner(priv), nil
}

// ParseCheckpointPublicKey reads a PEM public key ("PUBLIC KEY", PKIX, as
// `openssl pkey -pubout` writes it), or derives it from a PEM private key.
func ParseCheckpointPublicKey(pemBytes []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, ErrCheckpointKey
	}
	if block.Type == "PRIVATE KEY" {
		s, err := ParseCheckpointKey(pemBytes)
		if err != nil {
			return nil, err
		}
		return s.pub, nil
	}
	if block.Type != "PUBLIC KEY" {
		return nil, ErrCheckpointKey
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpointKey, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, ErrCheckpointKey
	}
	return pub, nil
}

// GenerateCheckpointKey makes a new key pair and returns the private key as
// PEM (PKCS #8) and the public key as PEM (PKIX).
func GenerateCheckpointKey() (privPEM, pubPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	px, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: px}), nil
}

// PublicKey returns the signer's public key.
func (s *CheckpointSigner) PublicKey() ed25519.PublicKey { return s.pub }

// KeyID returns the fingerprint of the signer's public key.
func (s *CheckpointSigner) KeyID() string { return s.id }

// Sign returns the signed checkpoint of a tenant's head at time at.
func (s *CheckpointSigner) Sign(tenant string, seq int64, mac string, at time.Time) Checkpoint {
	c := Checkpoint{Tenant: tenant, Seq: seq, MAC: mac, Time: at.UTC().Truncate(time.Microsecond),
		KeyID: s.id, PublicKey: s.pub}
	c.Signature = ed25519.Sign(s.priv, c.message())
	return c
}

// message is the byte string a checkpoint's signature covers, each field
// length-prefixed so that no two checkpoints encode alike.
func (c Checkpoint) message() []byte {
	var b bytes.Buffer
	var n [8]byte
	for _, p := range []string{CheckpointFormat, c.Tenant, strconv.FormatInt(c.Seq, 10), c.MAC, FormatTime(c.Time), c.KeyID} {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		b.Write(n[:])
		b.WriteString(p)
	}
	return b.Bytes()
}

// Verify checks that c was signed by the holder of pub.
func (c Checkpoint) Verify(pub ed25519.PublicKey) error {
	if c.KeyID != KeyID(pub) || !bytes.Equal(c.PublicKey, pub) {
		return fmt.Errorf("%w (signed by %s, trusted key is %s)", ErrCheckpointSigner, c.KeyID, KeyID(pub))
	}
	if !ed25519.Verify(pub, c.message(), c.Signature) {
		return ErrCheckpointSignature
	}
	return nil
}

// checkpointLine is the JSON form of a checkpoint: one self-describing line.
type checkpointLine struct {
	Type      string `json:"type"`
	Tenant    string `json:"tenant"`
	Seq       int64  `json:"seq"`
	MAC       string `json:"mac"`
	Time      string `json:"time"`
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"`
	Signature string `json:"signature"`
}

// MarshalLine encodes c as one JSON line (without the newline).
func (c Checkpoint) MarshalLine() ([]byte, error) {
	return json.Marshal(checkpointLine{
		Type: CheckpointFormat, Tenant: c.Tenant, Seq: c.Seq, MAC: c.MAC, Time: FormatTime(c.Time), KeyID: c.KeyID,
		PublicKey: base64.StdEncoding.EncodeToString(c.PublicKey),
		Signature: base64.StdEncoding.EncodeToString(c.Signature),
	})
}

// ParseCheckpoint decodes one checkpoint line: a line as MarshalLine writes
// it, or a JSON log line that carries one as its "checkpoint" attribute
// (AUTH_AUDIT_CHECKPOINT_SINK=log). It does not verify the signature.
func ParseCheckpoint(line []byte) (Checkpoint, error) {
	var wrapped struct {
		Checkpoint json.RawMessage `json:"checkpoint"`
	}
	if err := json.Unmarshal(line, &wrapped); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	if len(wrapped.Checkpoint) > 0 {
		line = wrapped.Checkpoint
	}
	var l checkpointLine
	if err := json.Unmarshal(line, &l); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	if l.Type != CheckpointFormat {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: type %q, want %q", l.Type, CheckpointFormat)
	}
	at, err := time.Parse("2006-01-02T15:04:05.000000Z", l.Time)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: time: %w", err)
	}
	pub, err := base64.StdEncoding.DecodeString(l.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return Checkpoint{}, errors.New("audit: checkpoint: public_key is not a base64 Ed25519 public key")
	}
	sig, err := base64.StdEncoding.DecodeString(l.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Checkpoint{}, errors.New("audit: checkpoint: signature is not a base64 Ed25519 signature")
	}
	if l.Tenant == "" || l.Seq < 0 || l.MAC == "" {
		return Checkpoint{}, errors.New("audit: checkpoint: tenant, seq or mac missing")
	}
	return Checkpoint{Tenant: l.Tenant, Seq: l.Seq, MAC: l.MAC, Time: at, KeyID: l.KeyID,
		PublicKey: ed25519.PublicKey(pub), Signature: sig}, nil
}

// CheckHead compares a verified checkpoint with the tenant's chain as
// stored now: its head (found says whether there is one) and rec, the
// record at the checkpoint's sequence number (recFound says whether there
// is one). A chain that is missing, behind the checkpoint, or whose record
// at the checkpoint differs from it was deleted, truncated, rolled back or
// rewritten after the checkpoint was taken.
func (c Checkpoint) CheckHead(head Head, found bool, rec Record, recFound bool) error {
	at := FormatTime(c.Time)
	fail := func(reason string) error { return &Problem{Tenant: c.Tenant, Seq: c.Seq, Reason: reason} }
	switch {
	case !found:
		return fail(fmt.Sprintf("chain is missing, but a checkpoint of %s vouches for it up to seq %d (deleted)", at, c.Seq))
	case head.Seq < c.Seq:
		return fail(fmt.Sprintf("chain head is at seq %d, behind the checkpoint of %s at seq %d (rolled back or truncated)", head.Seq, at, c.Seq))
	case c.Seq == 0 || c.Seq < head.BaseSeq:
		return nil // the start of the chain, or purged by retention
	case c.Seq == head.BaseSeq:
		if head.BaseMAC != c.MAC {
			return fail(fmt.Sprintf("retention anchor differs from the checkpoint of %s (rewritten)", at))
		}
		return nil
	case !recFound:
		return fail(fmt.Sprintf("record at the checkpoint of %s is missing (deleted)", at))
	case rec.MAC != c.MAC:
		return fail(fmt.Sprintf("record differs from the checkpoint of %s (chain rolled back or rewritten)", at))
	}
	return nil
}
