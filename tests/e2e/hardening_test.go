package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A body must be JSON where one is sent; a request without a body passes
// whatever it says its type is.
func TestRequestBodyTypes(t *testing.T) {
	s := rateServer(t)
	c := s.client(newKey(t))
	var created []string
	for i, tc := range []struct {
		name    string
		body    []byte // nil: no body
		chunked bool   // send the body without a length
		headers []string
		status  int
	}{
		{"Python client: JSON type, empty body", []byte{}, false, []string{"Content-Type: application/json"}, 200},
		{"curl -X POST: no type, no body", nil, false, nil, 200},
		{"JSON body", []byte(`{"description":"x"}`), false, []string{"Content-Type: application/json; charset=utf-8"}, 200},
		{"+json type", []byte(`{}`), false, []string{"Content-Type: application/merge-patch+json"}, 200},
		{"curl -d '{}': JSON under the form type", []byte(`{}`), false, []string{"Content-Type: application/x-www-form-urlencoded"}, 200},
		{"empty body under a text type", []byte{}, false, []string{"Content-Type: text/plain"}, 200},
		{"form body", []byte(`a=1&b=2`), false, []string{"Content-Type: application/x-www-form-urlencoded"}, 415},
		{"text body", []byte(`hello`), false, []string{"Content-Type: text/plain"}, 415},
		{"XML body", []byte(`<role/>`), false, []string{"Content-Type: application/xml"}, 415},
		{"body without a type", []byte(`hello`), false, nil, 415},
		{"chunked text body", []byte(`hello`), true, []string{"Content-Type: text/plain"}, 415},
		{"chunked JSON body", []byte(`{}`), true, []string{"Content-Type: application/json"}, 200},
		{"chunked empty body", []byte{}, true, []string{"Content-Type: text/plain"}, 200},
		{"malformed type", []byte(`{}`), false, []string{"Content-Type: application/json; =bad"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/role/r" + string(rune('a'+i))
			var body io.Reader
			if tc.body != nil {
				body = strings.NewReader(string(tc.body))
				if tc.chunked {
					body = io.MultiReader(body) // no length: chunked
				}
			}
			req, err := http.NewRequest("POST", s.base+path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+c.key)
			for _, h := range tc.headers {
				k, v, _ := strings.Cut(h, ": ")
				req.Header.Set(k, v)
			}
			resp, err := s.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := response{method: "POST", path: path, status: resp.StatusCode, header: resp.Header, body: b}
			checkCommonHeaders(t, r)
			if tc.status == 415 {
				expectError(t, r, 415, "Content-Type must be application/json when a request has a body.")
			} else {
				expect(t, r, tc.status, res("true"))
				created = append(created, `{"description":null,"role":"`+strings.TrimPrefix(path, "/api/role/")+`"}`)
			}
		})
	}
	// A refused request created nothing.
	expect(t, c.get(t, "/api/roles"), 200, res("["+strings.Join(created, ",")+"]"))
}

// A request head (request line and headers) of up to 16 KiB is read, one
// byte more is refused with 431, whatever the headers are.
func TestHeaderSizeLimit(t *testing.T) {
	s := rateServer(t)
	const limit = 16 << 10
	for _, tc := range []struct {
		name   string
		size   int
		status int
	}{
		{"8 KiB", 8 << 10, http.StatusOK},
		{"one byte under the limit", limit - 1, http.StatusOK},
		{"at the limit", limit, http.StatusOK},
		{"one byte over the limit", limit + 1, http.StatusRequestHeaderFieldsTooLarge},
		{"32 KiB", 32 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawStatus(t, s, headOfSize(t, tc.size)); got != tc.status {
				t.Errorf("a %d-byte request head: %d, want %d", tc.size, got, tc.status)
			}
		})
	}
}

// headOfSize is a GET /ping request head of exactly size bytes.
func headOfSize(t *testing.T, size int) string {
	t.Helper()
	const start, end = "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Padding: ", "\r\n\r\n"
	pad := size - len(start) - len(end)
	if pad < 1 {
		t.Fatalf("a %d-byte head is too small", size)
	}
	return start + strings.Repeat("a", pad) + end
}

// rawStatus writes a raw request to s and returns the status code of the
// answer.
func rawStatus(t *testing.T, s *server, req string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A client that sends its headers slowly is cut off after the header read
// timeout, while others are served.
func TestSlowHeadersAreCutOff(t *testing.T) {
	s := rateServer(t, "AUTH_READ_HEADER_TIMEOUT=300ms")
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /ping HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := bufio.NewReader(conn).ReadString('\n')
		closed <- err
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case err := <-closed:
			took := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server kept a slow client for %v", took)
			}
			if took < 250*time.Millisecond || took > 2*time.Second {
				t.Errorf("slow client cut off after %v, want about 300ms", took)
			}
			return
		case <-tick.C:
			// One more header byte every 50 ms: never a complete request.
			if _, err := io.WriteString(conn, "X"); err != nil {
				if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, os.ErrDeadlineExceeded) {
					continue // closed under us: the reader reports it
				}
				t.Fatalf("write: %v", err)
			}
			if i%4 == 0 {
				if r := s.do(t, "GET", "/ping"); r.status != 200 {
					t.Fatalf("GET /ping while a slow client waits: %d", r.status)
				}
			}
		}
	}
}

// SERVER_HOST may be an IPv6 address, with or without brackets.
func TestIPv6Host(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	for _, host := range []string{"::1", "[::1]"} {
		t.Run(host, func(t *testing.T) {
			s := sqliteServer(t, "SERVER_HOST="+host)
			if !strings.HasPrefix(s.base, "http://[::1]:") {
				t.Fatalf("listening on %s, want [::1]", s.base)
			}
			expect(t, s.do(t, "GET", "/ping"), 200, `{"message":"PONG"}`)
		})
	}
}

// With AUTH_OPS_ADDR, /metrics moves to a listener of its own, which serves
// /health and /ready too and nothing of the API.
func TestOpsListener(t *testing.T) {
	s := sqliteServer(t, "AUTH_OPS_ADDR=127.0.0.1:0")
	var addr string
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "ops listening" {
			addr = rec.Addr
		}
	}
	if addr == "" {
		t.Fatalf("no \"ops listening\" log line:\n%s", s.stderr.String())
	}
	ops := &server{base: "http://" + addr, http: s.http, opsListener: true}
	key := newKey(t)
	expect(t, s.client(key).post(t, "/api/role/admin"), 200, res("true"))
	for _, tc := range []struct {
		srv    *server
		path   string
		status int
	}{
		{s, "/metrics", 404},
		{s, "/health", 200},
		{s, "/ready", 200},
		{ops, "/metrics", 200},
		{ops, "/health", 200},
		{ops, "/ready", 200},
		{ops, "/ping", 404},
		{ops, "/api/roles", 404},
	} {
		r := tc.srv.do(t, "GET", tc.path, "Authorization: Bearer "+key)
		if r.status != tc.status {
			t.Errorf("GET %s%s: %d, want %d", tc.srv.base, tc.path, r.status, tc.status)
		}
		if tc.srv == ops && tc.path == "/metrics" && !strings.Contains(string(r.body), `auth_http_requests_total{code="200",method="POST",route="/api/role/:role"} 1`) {
			t.Errorf("the ops listener's /metrics does not count the API's requests:\n%s", r.body)
		}
	}
}
