package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echoTarget is a TCP server that writes back what it reads, and keeps a
// copy of everything it got.
type echoTarget struct {
	ln  net.Listener
	mu  sync.Mutex
	got bytes.Buffer
}

func newEchoTarget(t *testing.T) *echoTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoTarget{ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						e.mu.Lock()
						e.got.Write(buf[:n])
						e.mu.Unlock()
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return e
}

func (e *echoTarget) received() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.got.String()
}

// dial connects to the proxy; the connection is closed when the test ends.
func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
	if err != nil {
		t.Fatalf("dial the proxy: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// readN reads exactly n bytes from c within the deadline.
func readN(c net.Conn, n int, within time.Duration) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(within))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	buf := make([]byte, n)
	got, err := io.ReadFull(c, buf)
	return buf[:got], err
}

// roundTrip writes msg and reads its echo back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write through the proxy: %v", err)
	}
	got, err := readN(c, len(msg), 5*time.Second)
	if err != nil || string(got) != msg {
		t.Fatalf("echo through the proxy = %q, %v; want %q", got, err, msg)
	}
}

// waitFor polls cond until it holds, failing the test past within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

func TestProxyForwards(t *testing.T) {
	t.Parallel()
	e := newEchoTarget(t)
	p := NewProxy(t, e.ln.Addr().String())
	c := dial(t, p)
	for i := 0; i < 3; i++ {
		roundTrip(t, c, fmt.Sprintf("message %d\n", i))
	}
	// Several clients at once, each with its own stream.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		c := dial(t, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("client %d says hello\n", i)
			if _, err := io.WriteString(c, msg); err != nil {
				errs <- err
				return
			}
			if got, err := readN(c, len(msg), 5*time.Second); err != nil || string(got) != msg {
				errs <- fmt.Errorf("client %d: echo %q, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestProxyDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		delay  time.Duration
		chunks int
	}{
		{"one chunk", 150 * time.Millisecond, 1},
		{"many chunks keep their order", 100 * time.Millisecond, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEchoTarget(t)
			p := NewProxy(t, e.ln.Addr().String())
			p.SetDelay(tc.delay)
			c := dial(t, p)
			var want bytes.Buffer
			start := time.Now()
			for i := 0; i < tc.chunks; i++ {
				msg := fmt.Sprintf("chunk %03d;", i)
				want.WriteString(msg)
				if _, err := io.WriteString(c, msg); err != nil {
					t.Fatal(err)
				}
			}
			got, err := readN(c, want.Len(), 10*time.Second)
			if err != nil || string(got) != want.String() {
				t.Fatalf("echo through the proxy = %q, %v; want %q", got, err, want.String())
			}
			// A lower bound only: nothing from the target comes back
			// before the delay.
			if took := time.Since(start); took < tc.delay {
				t.Errorf("the echo came back after %v, before the delay of %v", took, tc.delay)
			}
		})
	}
	t.Run("only the stream from the target is held", func(t *testing.T) {
		t.Parallel()
		e := newEchoTarget(t)
		p := NewProxy(t, e.ln.Addr().String())
		p.SetDelay(time.Hour)
		c := dial(t, p)
		if _, err := io.WriteString(c, "upstream"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the target gets the bytes", func() bool { return e.received() == "upstream" })
		if got, err := readN(c, 1, 200*time.Millisecond); !isTimeout(err) {
			t.Errorf("read while the echo is held = %q, %v; want a timeout", got, err)
		}
	})
	t.Run("set again, it applies to open connections", func(t *testing.T) {
		t.Parallel()
		e := newEchoTarget(t)
		p := NewProxy(t, e.ln.Addr().String())
		c := dial(t, p)
		roundTrip(t, c, "before")
		p.SetDelay(time.Hour)
		if _, err := io.WriteString(c, "held"); err != nil {
			t.Fatal(err)
		}
		if got, err := readN(c, 1, 200*time.Millisecond); !isTimeout(err) {
			t.Errorf("read while the echo is held = %q, %v; want a timeout", got, err)
		}
		// A new connection, without delay, is not held up by the other
		// one's held chunk.
		p.SetDelay(0)
		roundTrip(t, dial(t, p), "after")
	})
}

func TestProxyCut(t *testing.T) {
	t.Parallel()
	e := newEchoTarget(t)
	p := NewProxy(t, e.ln.Addr().String())
	open := dial(t, p)
	roundTrip(t, open, "ping")
	p.SetDelay(time.Hour)
	held := dial(t, p)
	if _, err := io.WriteString(held, "held"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the target gets the held connection's bytes", func() bool { return e.received() == "pingheld" })

	p.Cut()
	for name, c := range map[string]net.Conn{"open": open, "with a held chunk": held} {
		got, err := readN(c, 1, 5*time.Second)
		if err == nil || isTimeout(err) || len(got) > 0 {
			t.Errorf("read on the %s connection after the cut = %q, %v; want the connection closed and nothing delivered", name, got, err)
		}
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		_ = c.Close()
		t.Errorf("a new connection was accepted while the proxy is cut")
	}

	p.Restore()
	p.SetDelay(0)
	roundTrip(t, dial(t, p), "pong")
	// Cut and restored again, the same port serves.
	p.Cut()
	p.Restore()
	roundTrip(t, dial(t, p), "again")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
