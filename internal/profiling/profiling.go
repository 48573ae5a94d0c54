// Package profiling serves Go's runtime profiles (net/http/pprof) on a
// listener of their own, for operators who need to see where a running
// server spends its time. It is off unless AUTH_PPROF_ADDR is set, and that
// address must be a loopback one: profiles show code paths, names held in
// memory and timings, which are not for the network.
package profiling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ourway/auth/internal/config"
)

// Config is the profiling listener's settings (in the ops: section).
type Config struct {
	// PprofAddr, when set, is the loopback host:port that serves /debug/pprof/
	// ("127.0.0.1:6060", "[::1]:6060", "localhost:6060").
	PprofAddr string `yaml:"pprof_addr" env:"AUTH_PPROF_ADDR"`
}

// Validate checks that PprofAddr, when set, is host:port with a loopback host.
func (c *Config) Validate() error {
	if c.PprofAddr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(c.PprofAddr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return config.Invalid("PprofAddr", c.PprofAddr, "must be host:port on loopback (\"127.0.0.1:6060\")")
	}
	if !loopback(host) {
		return config.Invalid("PprofAddr", c.PprofAddr, "must be a loopback address (127.0.0.1, ::1 or localhost): profiles are not for the network")
	}
	return nil
}

// loopback reports whether host names the loopback interface only. An
// empty host (":6060") would listen on every interface.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Rates of the mutex and block profiles while the listener is on: one
// contention event in mutexFraction is sampled, and blocking events of
// about blockRate nanoseconds and more. Both cost little at these rates.
const (
	mutexFraction = 5
	blockRate     = 10000
)

// Server serves the profiles.
type Server struct {
	ln  net.Listener
	hs  *http.Server
	log *slog.Logger
}

// Listen opens the profiling listener on c.PprofAddr (which Validate accepted).
func Listen(c Config, log *slog.Logger) (*Server, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", c.PprofAddr)
	if err != nil {
		return nil, fmt.Errorf("AUTH_PPROF_ADDR=%s: %w", c.PprofAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &Server{ln: ln, log: log, hs: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
	}}, nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends; the mutex and block profiles are sampled
// while it runs.
func (s *Server) Run(ctx context.Context) error {
	prevMutex := runtime.SetMutexProfileFraction(mutexFraction)
	runtime.SetBlockProfileRate(blockRate)
	defer func() {
		runtime.SetMutexProfileFraction(prevMutex)
		runtime.SetBlockProfileRate(0)
	}()
	s.log.Warn("profiling listener on: /debug/pprof/ (AUTH_PPROF_ADDR); turn it off when done", "addr", s.Addr())
	errc := make(chan error, 1)
	go func() { errc <- s.hs.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	_ = s.hs.Close()
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
