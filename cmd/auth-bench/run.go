package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/ourway/auth/cmd/internal/benchsuite"
	"github.com/ourway/auth/internal/ceiling"
)

// defaultPostgres and defaultRedis are the services of the test suite.
const (
	defaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	defaultRedis    = "redis://127.0.0.1:6379/0"
)

// ceilingFlag makes the program serve the ceiling instead (the suite
// starts it so, as a process of its own).
const ceilingFlag = "serve-ceiling"

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("auth-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	orDefault := func(v, d string) string {
		if v != "" {
			return v
		}
		return d
	}
	out := fs.String("out", "docs/benchmarks.md", "the report to write (- for standard output only)")
	quick := fs.Bool("quick", false, "a smoke run: short phases, a smaller cold tenant")
	only := fs.String("only", "", "comma-separated sections to run (default all): "+strings.Join(benchsuite.Sections, ", "))
	pg := fs.String("postgres", orDefault(getenv("AUTH_TEST_POSTGRES_URL"), defaultPostgres), "administrative PostgreSQL URL (databases are created and dropped through it)")
	redis := fs.String("redis", orDefault(getenv("AUTH_TEST_REDIS_URL"), defaultRedis), "Redis URL of the replica benchmark")
	server := fs.String("server", "", "a prebuilt auth-server binary (default: build ./cmd/auth-server)")
	notes := fs.String("notes", "", "hand-written notes included in the report (default: benchmarks-notes.md beside -out)")
	jsonOut := fs.String("json", "", "also write the figures as JSON to this file")
	keep := fs.Bool("keep", false, "keep the temporary directory (databases, server logs) for a look afterwards")
	serve := fs.String(ceilingFlag, "", "serve the ceiling on this address (used by the suite itself)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *serve != "" {
		ln, err := net.Listen("tcp", *serve)
		if err != nil {
			return err
		}
		return ceiling.Serve(ctx, ln)
	}

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	outDir := filepath.Dir(*out)
	if *out == "-" {
		outDir = filepath.Join(root, "docs")
	}
	if *notes == "" {
		*notes = filepath.Join(outDir, "benchmarks-notes.md")
	}
	var sections []string
	if *only != "" {
		sections = strings.Split(*only, ",")
	}
	command := "go run ./cmd/auth-bench -only SECTION -out /tmp/benchmarks.md"
	if *quick {
		command += " -quick"
	}
	cfg := benchsuite.Config{
		Root: root, Go: goTool(), Server: *server, Self: self,
		CeilingArgs: []string{"-" + ceilingFlag, "127.0.0.1:" + benchsuite.PortPlaceholder},
		PostgresURL: *pg, RedisURL: *redis, Quick: *quick, Only: sections,
		Notes: *notes, NotesLink: relPath(outDir, *notes), Command: command,
		KeepTemp: *keep,
		Log:      slog.New(slog.NewTextHandler(stderr, nil)),
	}
	rep, err := benchsuite.Run(ctx, cfg)
	if err != nil {
		return err
	}
	var md bytes.Buffer
	if err := rep.Render(&md); err != nil {
		return err
	}
	if *out != "-" {
		if err := os.WriteFile(*out, md.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	_, err = stdout.Write(md.Bytes())
	return err
}

// relPath is target relative to dir, or target itself when it has none.
func relPath(dir, target string) string {
	if r, err := filepath.Rel(dir, target); err == nil {
		return filepath.ToSlash(r)
	}
	return target
}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found: run auth-bench inside the module")
		}
		dir = parent
	}
}

// goTool is the go command: the one on PATH, else the toolchain's.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
