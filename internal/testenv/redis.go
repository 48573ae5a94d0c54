package testenv

import (
	"bufio"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DefaultRedisURL is used when AUTH_TEST_REDIS_URL is not set.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// RedisURL returns the URL of the test Redis after checking that it answers
// PING. The test is skipped when it does not (failed with
// AUTH_TEST_REQUIRE_SERVICES=1). Tests must use keys of their own (a unique
// prefix) and delete them.
func RedisURL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("AUTH_TEST_REDIS_URL")
	if raw == "" {
		raw = DefaultRedisURL
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("AUTH_TEST_REDIS_URL is not a redis:// URL")
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "6379")
	}
	if err := pingRedis(host, u.User); err != nil {
		msg := "Redis not reachable at " + host + ": " + err.Error()
		if Required() {
			t.Fatalf("%s (AUTH_TEST_REQUIRE_SERVICES=1)", msg)
		}
		t.Skipf("%s; set AUTH_TEST_REDIS_URL or start Redis to run this test", msg)
	}
	return raw
}

// RedisAddr is the host:port of RedisURL.
func RedisAddr(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "6379")
	}
	return u.Host
}

func pingRedis(addr string, user *url.Userinfo) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if user != nil {
		if p, ok := user.Password(); ok {
			if _, err := io.WriteString(c, "AUTH "+p+"\r\n"); err != nil {
				return err
			}
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
				return err
			}
		}
	}
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return &net.AddrError{Err: "unexpected reply " + strings.TrimSpace(line), Addr: addr}
	}
	return nil
}

// Proxy is a TCP proxy on a fixed local port that a test can cut (every
// connection is closed and new ones are refused) and restore, to play an
// outage of the service behind it, or slow down (every chunk the service
// sends is held for a while before it is passed on), to play a lagging
// link.
type Proxy struct {
	t      testing.TB
	target string
	addr   string
	delay  atomic.Int64 // time.Duration each chunk from the target is held

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// NewProxy starts a proxy to target on a free local port. It is stopped
// when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() {
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// Cut closes the listener and every connection: clients see resets, then
// refused connections.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// SetDelay holds every chunk the target sends for d before the proxy
// passes it on to its client (0: no delay), on the connections open now and
// later ones, until it is set again. A chunk keeps the delay in force when
// it was read; the order of the bytes is kept, and a delay does not slow the
// stream down otherwise (chunks are held side by side, not one after the
// other). Bytes toward the target are never delayed. Cut drops the chunks
// still held.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Restore listens again on the same port.
func (p *Proxy) Restore() {
	p.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", p.addr)
		if err == nil {
			p.serve(ln)
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.pipe(c)
			}()
		}
	}()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) pipe(c net.Conn) {
	defer c.Close()
	if !p.track(c) {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(up) {
		return
	}
	done := make(chan struct{}, 2)
	stop := make(chan struct{})
	defer close(stop)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { p.down(c, up, stop); done <- struct{}{} }()
	<-done
}

// chunk is a piece of the target's stream and when it may be passed on.
type chunk struct {
	b   []byte
	due time.Time
}

// down copies the target's stream src to the client dst, holding each chunk
// for the delay in force when it was read. It returns when src ends, dst
// fails or stop is closed.
func (p *Proxy) down(dst, src net.Conn, stop <-chan struct{}) {
	held := make(chan chunk, 4096)
	dead := make(chan struct{}) // closed when the writer gives up
	go func() {
		defer close(dead)
		for ch := range held {
			if wait := time.Until(ch.due); wait > 0 {
				tm := time.NewTimer(wait)
				select {
				case <-tm.C:
				case <-stop:
					tm.Stop()
					return
				}
			}
			if _, err := dst.Write(ch.b); err != nil {
				return
			}
		}
	}()
	defer func() {
		close(held)
		<-dead
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			ch := chunk{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(time.Duration(p.delay.Load()))}
			select {
			case held <- ch:
			case <-dead:
				return
			case <-stop:
				return
			}
		}
		if err != nil {
			return
		}
	}
}
