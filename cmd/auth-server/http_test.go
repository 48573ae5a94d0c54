package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ourway/auth/api"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// blocking is a handler that says when a request is in and answers once
// release is closed (or the request's context ends).
func blocking(in chan<- struct{}, release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		select {
		case <-release:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	})
}

// startListener runs a listener on a free port with h; it returns the
// listener's URL, a cancel that stops it, and Run's result.
func startListener(t *testing.T, h http.Handler, drain time.Duration) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	l, err := newListener(api.ServerConfig{}, "127.0.0.1:0", "TEST_ADDR", h, drain, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	return "http://" + l.Addr(), cancel, done
}

// get sends a GET in the background; the status (or the error) arrives on
// the channel.
func get(t *testing.T, url string) <-chan any {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	out := make(chan any, 1)
	go func() {
		resp, err := c.Get(url)
		if err != nil {
			out <- err
			return
		}
		resp.Body.Close()
		out <- resp.StatusCode
	}()
	return out
}

// Once its context ends, a listener lets the requests in flight finish,
// then Run returns nil.
func TestListenerDrains(t *testing.T) {
	in, release := make(chan struct{}, 1), make(chan struct{})
	url, cancel, done := startListener(t, blocking(in, release), time.Minute)
	resp := get(t, url)
	<-in
	cancel()
	close(release)
	if got := <-resp; got != http.StatusNoContent {
		t.Errorf("request in flight at shutdown: %v, want 204", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// Requests still in flight when the drain ends are cut, and Run says so.
func TestListenerDrainTimeout(t *testing.T) {
	in, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	url, cancel, done := startListener(t, blocking(in, release), 10*time.Millisecond)
	resp := get(t, url)
	<-in
	cancel()
	err := <-done
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "shutdown: ") {
		t.Errorf("Run with a request stuck past the drain = %v, want shutdown: context deadline exceeded", err)
	}
	if got := <-resp; got == http.StatusNoContent {
		t.Error("the request stuck past the drain was answered")
	}
}

// A listener that cannot serve fails with an error naming its settings; one
// without a drain (the ops listener) stops at once.
func TestListenerFailsAndStops(t *testing.T) {
	t.Run("serve fails", func(t *testing.T) {
		l, err := newListener(api.ServerConfig{}, "127.0.0.1:0", "TEST_ADDR", http.NotFoundHandler(), 0, quiet)
		if err != nil {
			t.Fatal(err)
		}
		_ = l.ln.Close()
		err = l.Run(context.Background())
		if err == nil || !strings.HasPrefix(err.Error(), "listener (TEST_ADDR): ") {
			t.Errorf("Run on a closed socket = %v, want an error naming TEST_ADDR", err)
		}
	})
	t.Run("no drain", func(t *testing.T) {
		in := make(chan struct{}, 1)
		url, cancel, done := startListener(t, blocking(in, make(chan struct{})), 0)
		resp := get(t, url)
		<-in
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if got := <-resp; got == http.StatusNoContent {
			t.Error("a listener without a drain waited for its request")
		}
	})
	t.Run("address in use", func(t *testing.T) {
		l, err := newListener(api.ServerConfig{}, "127.0.0.1:0", "TEST_ADDR", http.NotFoundHandler(), 0, quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer l.ln.Close()
		_, err = newListener(api.ServerConfig{}, l.Addr(), "TEST_ADDR", http.NotFoundHandler(), 0, quiet)
		if want := "listen on " + l.Addr() + " (TEST_ADDR): "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("newListener on a used address = %v, want %q…", err, want)
		}
	})
}
