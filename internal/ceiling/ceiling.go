// Package ceiling is the reference point of the HTTP benchmarks: a bare
// net/http server whose only handler answers a small JSON object. Whatever
// a load generator measures against it on a machine is the most any HTTP
// service in Go can do there, so a server's figures are reported as
// fractions of it.
package ceiling

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"
)

// answer is what the handler writes: the shape of the service's answers to
// a write ({"result":true}).
type answer struct {
	Result bool `json:"result"`
}

// Handler answers every request with 200 and {"result":true}, encoded for
// each request as a JSON handler would.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer{Result: true})
	})
}

// Serve answers on ln until ctx ends, then shuts down.
func Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: Handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
