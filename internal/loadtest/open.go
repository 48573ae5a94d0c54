package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// The open loop is a schedule, not a pool: each of its connections sends
// its share of the arrival rate at fixed times (staggered across the
// connections), on a keep-alive connection of its own. A request is timed
// from its start, except when its connection was still busy with an
// earlier answer at the time the request was due: then it is timed from
// the time it was due, so that a server that falls behind is charged with
// the whole wait (no coordinated omission) while the generator's own lag
// in waking up is not charged to the server. vegeta's open loop hands each
// tick to any idle worker and spawns workers and connections as it goes,
// which on two cores costs the generator more than the server it
// measures; this one opens its connections before the first request.

// openConnections is how many connections an open loop at rate uses: one
// per 250 requests per second, at least 16 and at most 256, so that each
// connection has about 4 ms between its requests at any rate up to 64 000/s.
func openConnections(rate float64) int {
	return min(max(int(rate/250), 16), 256)
}

// wire is a request rendered once as HTTP/1.1 bytes.
type wire struct {
	index int // in the phase's Requests
	addr  string
	bytes []byte
}

// render turns the phase's requests into wire bytes; every request must
// go to the same host.
func render(reqs []Request) ([]wire, error) {
	out := make([]wire, len(reqs))
	for i, r := range reqs {
		u, err := url.Parse(r.URL)
		if err != nil {
			return nil, err
		}
		if u.Scheme != "http" {
			return nil, fmt.Errorf("loadtest: %s: only http:// is supported", r.URL)
		}
		if i > 0 && u.Host != out[0].addr {
			return nil, fmt.Errorf("loadtest: %s: every request must go to %s", r.URL, out[0].addr)
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.Method, u.RequestURI(), u.Host)
		for k, vs := range r.Header {
			for _, v := range vs {
				fmt.Fprintf(&b, "%s: %s\r\n", k, v)
			}
		}
		if len(r.Body) > 0 || r.Method == http.MethodPost || r.Method == http.MethodPut {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.Body))
		}
		b.WriteString("\r\n")
		b.Write(r.Body)
		out[i] = wire{index: i, addr: u.Host, bytes: b.Bytes()}
	}
	return out, nil
}

// conn is one keep-alive connection of the open loop.
type conn struct {
	addr    string
	timeout time.Duration
	c       net.Conn
	r       *bufio.Reader
}

// do sends w and reads its answer, dialling first when there is no
// connection; a connection that fails or that the server closes is
// dropped (the next request dials again).
func (c *conn) do(w wire) (status int, body []byte, err error) {
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.addr, c.timeout)
		if err != nil {
			return 0, nil, err
		}
		c.c, c.r = nc, bufio.NewReaderSize(nc, 16<<10)
	}
	_ = c.c.SetDeadline(time.Now().Add(c.timeout))
	if _, err = c.c.Write(w.bytes); err == nil {
		var resp *http.Response
		if resp, err = http.ReadResponse(c.r, nil); err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
			if err == nil && !resp.Close {
				return status, body, nil
			}
		}
	}
	c.close()
	return status, body, err
}

func (c *conn) close() {
	if c.c != nil {
		_ = c.c.Close()
		c.c = nil
	}
}

// openLoop sends the phase's requests at p.Rate for p.Duration and
// returns every request's outcome.
func openLoop(ctx context.Context, p Phase) ([]sample, error) {
	wires, err := render(p.Requests)
	if err != nil {
		return nil, err
	}
	n := openConnections(p.Rate)
	interval := time.Duration(float64(n) / p.Rate * float64(time.Second))
	conns := make([]*conn, n)
	for i := range conns {
		conns[i] = &conn{addr: wires[0].addr, timeout: p.Timeout}
		// Opened before the first request is due: a dial is not a
		// request's latency.
		if nc, err := net.DialTimeout("tcp", conns[i].addr, p.Timeout); err == nil {
			conns[i].c, conns[i].r = nc, bufio.NewReaderSize(nc, 16<<10)
		}
	}
	start := time.Now().Add(20 * time.Millisecond)
	end := start.Add(p.Duration)
	per := make([][]sample, n)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.close()
			// Connection i sends requests i, i+n, i+2n… at start + its
			// offset + k·interval.
			due := start.Add(interval * time.Duration(i) / time.Duration(n))
			samples := make([]sample, 0, int(p.Duration/interval)+1)
			for k := i; due.Before(end) && ctx.Err() == nil; k += n {
				from := due
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
					from = time.Now() // on schedule: timed from the send
				}
				w := wires[k%len(wires)]
				status, body, err := c.do(w)
				samples = append(samples, sample{req: w.index, status: status, body: body, err: err,
					start: from, latency: time.Since(from)})
				due = due.Add(interval)
			}
			per[i] = samples
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var all []sample
	for _, s := range per {
		all = append(all, s...)
	}
	return all, nil
}
