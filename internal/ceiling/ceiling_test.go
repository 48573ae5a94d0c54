package ceiling_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/ourway/auth/internal/ceiling"
)

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ceiling.Serve(ctx, ln) }()
	for _, path := range []string{"/ping", "/api/has_permission/alice/read"} {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || string(body) != "{\"result\":true}\n" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s = %d %q (%s), want 200 {\"result\":true} as JSON", path, resp.StatusCode, body, resp.Header.Get("Content-Type"))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after its context ended = %v, want nil", err)
	}
}
