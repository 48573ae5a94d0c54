package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
)

func newSigner(t *testing.T) (*audit.CheckpointSigner, []byte) {
	t.Helper()
	priv, pub, err := audit.GenerateCheckpointKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.ParseCheckpointKey(priv)
	if err != nil {
		t.Fatalf("ParseCheckpointKey(generated): %v", err)
	}
	return s, pub
}

func TestCheckpointSignAndVerify(t *testing.T) {
	signer, pubPEM := newSigner(t)
	other, _ := newSigner(t)
	pub, err := audit.ParseCheckpointPublicKey(pubPEM)
	if err != nil {
		t.Fatalf("ParseCheckpointPublicKey: %v", err)
	}
	if !bytes.Equal(pub, signer.PublicKey()) {
		t.Fatal("public key PEM does not match the private key")
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	good := signer.Sign("t_0123", 42, strings.Repeat("ab", 32), at)

	flip := func(b []byte) []byte { b = append([]byte(nil), b...); b[3] ^= 0x01; return b }
	cases := []struct {
		name string
		cp   func() audit.Checkpoint
		key  ed25519.PublicKey
		want error
	}{
		{"intact", func() audit.Checkpoint { return good }, pub, nil},
		{"signature bit flipped", func() audit.Checkpoint { c := good; c.Signature = flip(c.Signature); return c }, pub, audit.ErrCheckpointSignature},
		{"seq raised", func() audit.Checkpoint { c := good; c.Seq++; return c }, pub, audit.ErrCheckpointSignature},
		{"seq lowered", func() audit.Checkpoint { c := good; c.Seq--; return c }, pub, audit.ErrCheckpointSignature},
		{"mac changed", func() audit.Checkpoint { c := good; c.MAC = strings.Repeat("cd", 32); return c }, pub, audit.ErrCheckpointSignature},
		{"tenant changed", func() audit.Checkpoint { c := good; c.Tenant = "t_4567"; return c }, pub, audit.ErrCheckpointSignature},
		{"time changed", func() audit.Checkpoint { c := good; c.Time = c.Time.Add(time.Second); return c }, pub, audit.ErrCheckpointSignature},
		{"wrong trusted key", func() audit.Checkpoint { return good }, other.PublicKey(), audit.ErrCheckpointSigner},
		{"signed by another key", func() audit.Checkpoint {
			return other.Sign("t_0123", 42, strings.Repeat("ab", 32), at)
		}, pub, audit.ErrCheckpointSigner},
		{"another key claiming the trusted key id", func() audit.Checkpoint {
			c := other.Sign("t_0123", 42, strings.Repeat("ab", 32), at)
			c.KeyID, c.PublicKey = good.KeyID, good.PublicKey
			return c
		}, pub, audit.ErrCheckpointSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cp().Verify(tc.key)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCheckpointLineRoundTrip(t *testing.T) {
	signer, _ := newSigner(t)
	c := signer.Sign("t_0123", 7, strings.Repeat("ab", 32), time.Now())
	line, err := c.MarshalLine()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, line string }{
		{"line", string(line)},
		{"log line", `{"time":"2026-03-01T12:00:00Z","level":"INFO","msg":"audit checkpoint","checkpoint":` + string(line) + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := audit.ParseCheckpoint([]byte(tc.line))
			if err != nil {
				t.Fatalf("ParseCheckpoint: %v", err)
			}
			if got.Tenant != c.Tenant || got.Seq != c.Seq || got.MAC != c.MAC || !got.Time.Equal(c.Time) || got.KeyID != c.KeyID {
				t.Errorf("ParseCheckpoint = %+v, want %+v", got, c)
			}
			if err := got.Verify(signer.PublicKey()); err != nil {
				t.Errorf("Verify after round trip: %v", err)
			}
		})
	}
	for _, tc := range []struct{ name, line, want string }{
		{"not JSON", `seq=7`, "checkpoint"},
		{"other type", strings.Replace(string(line), audit.CheckpointFormat, "something/v1", 1), "type"},
		{"bad time", strings.Replace(string(line), `"time":"`, `"time":"x`, 1), "time"},
		{"bad signature encoding", strings.Replace(string(line), `"signature":"`, `"signature":"!`, 1), "signature"},
		{"bad public key encoding", strings.Replace(string(line), `"public_key":"`, `"public_key":"!`, 1), "public_key"},
		{"no tenant", strings.Replace(string(line), `"tenant":"t_0123"`, `"tenant":""`, 1), "tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := audit.ParseCheckpoint([]byte(tc.line))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseCheckpoint(%s) = %v, want an error naming %q", tc.line, err, tc.want)
			}
		})
	}
}

func TestCheckpointKeyFiles(t *testing.T) {
	for _, tc := range []struct{ name, pem string }{
		{"empty", ""},
		{"not PEM", "ed25519 please"},
		{"other block", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
		{"garbage key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := audit.ParseCheckpointKey([]byte(tc.pem)); !errors.Is(err, audit.ErrCheckpointKey) {
				t.Errorf("ParseCheckpointKey = %v, want ErrCheckpointKey", err)
			}
			if _, err := audit.ParseCheckpointPublicKey([]byte(tc.pem)); !errors.Is(err, audit.ErrCheckpointKey) {
				t.Errorf("ParseCheckpointPublicKey = %v, want ErrCheckpointKey", err)
			}
		})
	}
}

// TestCheckpointKeyFromOpenSSL: a key made with `openssl genpkey -algorithm
// ed25519` signs, and `openssl pkey -pubout` gives the public key that
// verifies.
func TestCheckpointKeyFromOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "cp.pem"), filepath.Join(dir, "cp.pub")
	for _, args := range [][]string{
		{"genpkey", "-algorithm", "ed25519", "-out", priv},
		{"pkey", "-in", priv, "-pubout", "-out", pub},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	signer, err := audit.ParseCheckpointKey(read(priv))
	if err != nil {
		t.Fatalf("ParseCheckpointKey(openssl key): %v", err)
	}
	key, err := audit.ParseCheckpointPublicKey(read(pub))
	if err != nil {
		t.Fatalf("ParseCheckpointPublicKey(openssl key): %v", err)
	}
	if err := signer.Sign("t_1", 1, "ab", time.Now()).Verify(key); err != nil {
		t.Errorf("Verify with the openssl public key: %v", err)
	}
}

func TestCheckpointCheckHead(t *testing.T) {
	signer, _ := newSigner(t)
	cp := signer.Sign("t_1", 5, "mac5", time.Now())
	head := audit.Head{Tenant: "t_1", Seq: 9, MAC: "mac9"}
	rec := audit.Record{Tenant: "t_1", Seq: 5, MAC: "mac5"}
	cases := []struct {
		name     string
		head     audit.Head
		found    bool
		rec      audit.Record
		recFound bool
		want     string // "" when it checks out
	}{
		{"chain went on", head, true, rec, true, ""},
		{"head at the checkpoint", audit.Head{Tenant: "t_1", Seq: 5, MAC: "mac5"}, true, rec, true, ""},
		{"chain missing", audit.Head{}, false, audit.Record{}, false, "chain is missing"},
		{"rolled back", audit.Head{Tenant: "t_1", Seq: 4, MAC: "mac4"}, true, audit.Record{}, false, "behind the checkpoint"},
		{"record rewritten", head, true, audit.Record{Tenant: "t_1", Seq: 5, MAC: "other"}, true, "differs"},
		{"record deleted", head, true, audit.Record{}, false, "missing"},
		{"purged by retention", audit.Head{Tenant: "t_1", Seq: 9, BaseSeq: 7}, true, audit.Record{}, false, ""},
		{"retention anchor at the checkpoint", audit.Head{Tenant: "t_1", Seq: 9, BaseSeq: 5, BaseMAC: "mac5"}, true, audit.Record{}, false, ""},
		{"retention anchor rewritten", audit.Head{Tenant: "t_1", Seq: 9, BaseSeq: 5, BaseMAC: "x"}, true, audit.Record{}, false, "anchor differs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := cp.CheckHead(tc.head, tc.found, tc.rec, tc.recFound)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("CheckHead = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("CheckHead = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
