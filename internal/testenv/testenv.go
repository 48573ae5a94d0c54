// Package testenv gives tests their own PostgreSQL database and tells them
// whether the local services are there. With AUTH_TEST_REQUIRE_SERVICES=1 (as
// in CI) a missing service fails the test instead of skipping it.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// DefaultPostgresURL is used when AUTH_TEST_POSTGRES_URL is not set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Required reports whether missing services must fail tests.
func Required() bool { return os.Getenv("AUTH_TEST_REQUIRE_SERVICES") == "1" }

// unavailable skips, or fails when services are required.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (AUTH_TEST_REQUIRE_SERVICES=1)", msg)
	}
	t.Skipf("%s; set AUTH_TEST_POSTGRES_URL or start PostgreSQL to run this test", msg)
}

// PostgresURL creates an empty database for this test and returns its URL.
// The database is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("AUTH_TEST_POSTGRES_URL")
	if admin == "" {
		admin = DefaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		unavailable(t, "PostgreSQL: %v", err)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		unavailable(t, "PostgreSQL not reachable: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "auth_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		_ = db.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
		_ = db.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse AUTH_TEST_POSTGRES_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
