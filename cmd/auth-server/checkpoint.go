package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/settings"
)

// checkpointSigner reads the checkpoint signing key named by
// AUTH_AUDIT_CHECKPOINT_KEY_FILE.
func checkpointSigner(cfg settings.Config) (*audit.CheckpointSigner, error) {
	if cfg.Audit.CheckpointKeyFile == "" {
		return nil, errors.New("AUTH_AUDIT_CHECKPOINT_KEY_FILE is required: an Ed25519 private key in PEM " +
			"(`auth-server audit checkpoint-keygen --out FILE`, or `openssl genpkey -algorithm ed25519 -out FILE`)")
	}
	b, err := os.ReadFile(cfg.Audit.CheckpointKeyFile)
	if err != nil {
		return nil, fmt.Errorf("AUTH_AUDIT_CHECKPOINT_KEY_FILE: %w", err)
	}
	s, err := audit.ParseCheckpointKey(b)
	if err != nil {
		return nil, fmt.Errorf("AUTH_AUDIT_CHECKPOINT_KEY_FILE: %w", err)
	}
	return s, nil
}

// checkpointWriter writes signed checkpoints of every chain head to the
// sink of AUTH_AUDIT_CHECKPOINT_SINK.
type checkpointWriter struct {
	store  *auditdb.Store
	keys   *audit.Keyring
	signer *audit.CheckpointSigner
	sink   string // a file path, "stdout" or "log"
	stdout io.Writer
	log    *slog.Logger
	now    func() time.Time
}

// write signs the head of every chain that authenticates and writes the
// checkpoints; it returns how many it wrote. A head that does not
// authenticate is not signed (it is reported, and `audit verify` names it).
func (w *checkpointWriter) write(ctx context.Context) (int, error) {
	heads, err := w.store.Heads(ctx)
	if err != nil {
		return 0, err
	}
	at := w.now()
	var lines [][]byte
	var bad []error
	for _, h := range heads {
		if _, err := w.keys.NewVerifier(h); err != nil {
			bad = append(bad, err)
			continue
		}
		line, err := w.signer.Sign(h.Tenant, h.Seq, h.MAC, at).MarshalLine()
		if err != nil {
			return 0, err
		}
		lines = append(lines, line)
	}
	if err := w.emit(ctx, lines); err != nil {
		return 0, fmt.Errorf("write checkpoints to %s: %w", w.sink, err)
	}
	if len(bad) > 0 {
		return len(lines), fmt.Errorf("chain heads not checkpointed: %w", errors.Join(bad...))
	}
	return len(lines), nil
}

func (w *checkpointWriter) emit(ctx context.Context, lines [][]byte) error {
	switch w.sink {
	case "log":
		for _, l := range lines {
			w.log.LogAttrs(ctx, slog.LevelInfo, "audit checkpoint", slog.Any("checkpoint", json.RawMessage(l)))
		}
		return nil
	case "stdout":
		var b bytes.Buffer
		for _, l := range lines {
			b.Write(l)
			b.WriteByte('\n')
		}
		_, err := w.stdout.Write(b.Bytes())
		return err
	}
	f, err := os.OpenFile(w.sink, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l)
		b.WriteByte('\n')
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// job is the scheduled checkpoint run; ctx ends when the scheduler stops.
func (w *checkpointWriter) job(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	n, err := w.write(ctx)
	if err != nil {
		w.log.Error("audit checkpoint failed", "written", n, "sink", w.sink, "err", err)
		return
	}
	w.log.Info("audit checkpoints written", "tenants", n, "sink", w.sink)
}

// readCheckpoints reads a checkpoint file (lines of the file sink, or JSON
// log lines of the log sink; other lines of a log are skipped) and checks
// each signature under pub. Bad signatures and unreadable checkpoint lines
// are returned as problems.
func readCheckpoints(path string, pub ed25519.PublicKey) ([]audit.Checkpoint, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--checkpoints: %w", err)
	}
	defer f.Close()
	var cps []audit.Checkpoint
	var problems []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if !bytes.Contains(line, []byte(audit.CheckpointFormat)) {
			continue // another log line
		}
		c, err := audit.ParseCheckpoint(line)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s line %d: %v", path, n, err))
			continue
		}
		if err := c.Verify(pub); err != nil {
			problems = append(problems, fmt.Sprintf("%s line %d (tenant %s, seq %d): %v", path, n, c.Tenant, c.Seq, err))
			continue
		}
		cps = append(cps, c)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("--checkpoints: %w", err)
	}
	return cps, problems, nil
}

// checkpointPublicKey is the trusted public key: --checkpoint-pubkey, else
// the one of AUTH_AUDIT_CHECKPOINT_KEY_FILE. The key written in the
// checkpoints themselves is never trusted.
func checkpointPublicKey(cfg settings.Config, file string) (ed25519.PublicKey, error) {
	setting := "--checkpoint-pubkey"
	if file == "" {
		if cfg.Audit.CheckpointKeyFile == "" {
			return nil, errors.New("--checkpoints needs the trusted public key: --checkpoint-pubkey FILE (or AUTH_AUDIT_CHECKPOINT_KEY_FILE)")
		}
		file, setting = cfg.Audit.CheckpointKeyFile, "AUTH_AUDIT_CHECKPOINT_KEY_FILE"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	pub, err := audit.ParseCheckpointPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	return pub, nil
}
