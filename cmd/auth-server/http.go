package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/internal/lifecycle"
	"github.com/ourway/auth/settings"
)

// listener is an HTTP server on an open listener, run as a part: it serves
// until its ctx ends, then lets the requests in flight finish for at most
// drain (0: it closes at once).
type listener struct {
	name  string // names the listener's settings in its errors
	hs    *http.Server
	ln    net.Listener
	drain time.Duration
	log   *slog.Logger
}

// newListener opens addr for h; setting names the address's variables in
// the error.
func newListener(cfg api.ServerConfig, addr, setting string, h http.Handler, drain time.Duration, log *slog.Logger) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (%s): %w", addr, setting, err)
	}
	return &listener{name: setting, ln: ln, drain: drain, log: log, hs: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    api.HTTPMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}, nil
}

// Addr is the address the listener listens on.
func (l *listener) Addr() string { return l.ln.Addr().String() }

// Run serves until ctx ends, then drains. Requests still in flight at the
// end of the drain are cut, and Run says so.
func (l *listener) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- l.hs.Serve(l.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("listener (%s): %w", l.name, err)
	case <-ctx.Done():
	}
	var shutdownErr error
	if l.drain > 0 {
		l.log.Info("shutting down", "timeout", l.drain.String())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.drain)
		defer cancel()
		if shutdownErr = l.hs.Shutdown(sctx); shutdownErr != nil {
			l.log.Error("requests still in flight at the shutdown timeout", "err", shutdownErr)
			shutdownErr = fmt.Errorf("shutdown: %w", shutdownErr)
		}
	}
	_ = l.hs.Close() // at once without a drain, or what the drain left
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return errors.Join(shutdownErr, err)
	}
	return shutdownErr
}

// listeners are the API listener (SERVER_HOST/SERVER_PORT, serving handler:
// the API, and the console beside it), which drains
// for AUTH_SHUTDOWN_TIMEOUT when it stops, and, with AUTH_OPS_ADDR, the ops
// listener (/metrics, /health, /ready), which stops at once: scrapes and
// probes have nothing worth waiting for. The ops listener comes first, so
// that it stops after the API has drained.
func listeners(cfg settings.Config, srv *api.Server, handler http.Handler, log *slog.Logger) ([]lifecycle.Part, string, error) {
	web, err := newListener(cfg.Server, cfg.Server.Addr(), "SERVER_HOST/SERVER_PORT", handler, cfg.Server.ShutdownTimeout, log)
	if err != nil {
		return nil, "", err
	}
	apiPart := lifecycle.Part{Name: "API listener", Run: web.Run}
	if cfg.Ops.Addr == "" {
		return []lifecycle.Part{apiPart}, web.Addr(), nil
	}
	ops, err := newListener(cfg.Server, cfg.Ops.Addr, "AUTH_OPS_ADDR", srv.OpsHandler(), 0, log)
	if err != nil {
		_ = web.ln.Close()
		return nil, "", err
	}
	log.Info("ops listening", "addr", ops.Addr())
	return []lifecycle.Part{{Name: "ops listener", Run: ops.Run}, apiPart}, web.Addr(), nil
}
