package webhook_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourway/auth/webhook"
)

const testSecret = "whsec_test_secret"

// recorder collects what a Sender reports and how long it asked to wait.
type recorder struct {
	mu       sync.Mutex
	outcomes []string
	waits    []time.Duration
}

func (r *recorder) observe(o string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes = append(r.outcomes, o)
}

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
	return ctx.Err()
}

// sender returns a Sender whose guard allow-lists 127.0.0.1 (where
// httptest servers listen), recording into a new recorder.
func sender(t *testing.T, opts webhook.SenderOptions) (*webhook.Sender, *recorder) {
	t.Helper()
	rec := &recorder{}
	if opts.Guard == nil {
		opts.Guard = webhook.NewGuard([]string{"127.0.0.1"}, nil)
	}
	opts.Observe, opts.Sleep = rec.observe, rec.sleep
	s := webhook.NewSender(opts)
	t.Cleanup(s.CloseIdleConnections)
	return s, rec
}

// server answers with the statuses in turn (the last one repeating) and
// records the requests it got, after checking each one's signature.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	got      []*http.Request
	bodies   [][]byte
	verify   []string // secrets each request must verify with
	t        *testing.T
}

func newServer(t *testing.T, statuses ...int) *server {
	s := &server{statuses: statuses, verify: []string{testSecret}, t: t}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.got)
	s.got, s.bodies = append(s.got, r), append(s.bodies, body)
	status := s.statuses[min(n, len(s.statuses)-1)]
	s.mu.Unlock()
	// Verify at the attempt's own time: the sender's clock may be fake.
	sec, _ := strconv.ParseInt(r.Header.Get(webhook.HeaderTimestamp), 10, 64)
	ts := time.Unix(sec, 0)
	for _, secret := range s.verify {
		if err := webhook.Verify(secret, r.Header, body, ts, 0); err != nil {
			s.t.Errorf("request %d does not verify with %s: %v", n+1, secret, err)
		}
	}
	if status >= 300 && status < 400 {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(status)
	io.WriteString(w, strings.Repeat("x", 100<<10)) // more than is read
}

func (s *server) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func TestSendOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		attempts int
		want     webhook.Result
		observed []string
	}{
		{"delivered at once", []int{204}, 4, webhook.Result{Outcome: "delivered", Attempts: 1, Status: 204}, []string{"delivered"}},
		{"500 then 200", []int{500, 200}, 4, webhook.Result{Outcome: "delivered", Attempts: 2, Status: 200}, []string{"retried", "delivered"}},
		{"408, 425, 429, 503 are retried", []int{408, 425, 429, 503, 202}, 5, webhook.Result{Outcome: "delivered", Attempts: 5, Status: 202}, []string{"retried", "retried", "retried", "retried", "delivered"}},
		{"400 is final", []int{400, 200}, 4, webhook.Result{Outcome: "failed", Attempts: 1, Status: 400, Err: "answered 400 Bad Request"}, []string{"failed"}},
		{"404 is final", []int{404}, 4, webhook.Result{Outcome: "failed", Attempts: 1, Status: 404, Err: "answered 404 Not Found"}, []string{"failed"}},
		{"always 500", []int{500}, 3, webhook.Result{Outcome: "failed", Attempts: 3, Status: 500, Err: "answered 500 Internal Server Error"}, []string{"retried", "retried", "failed"}},
		{"redirect not followed", []int{302, 200}, 4, webhook.Result{Outcome: "failed", Attempts: 1, Status: 302, Err: "answered 302 Found; redirects are not followed"}, []string{"failed"}},
		{"301 not followed", []int{301, 200}, 4, webhook.Result{Outcome: "failed", Attempts: 1, Status: 301, Err: "answered 301 Moved Permanently; redirects are not followed"}, []string{"failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.statuses...)
			s, rec := sender(t, webhook.SenderOptions{Attempts: tt.attempts})
			body := []byte(`{"run_id":"42"}`)
			got := s.Send(context.Background(), srv.URL+"/hook", "42", []string{testSecret}, body)
			if got != tt.want {
				t.Fatalf("Send = %+v, want %+v", got, tt.want)
			}
			if !slices.Equal(rec.outcomes, tt.observed) {
				t.Fatalf("observed %q, want %q", rec.outcomes, tt.observed)
			}
			reqs := srv.requests()
			if len(reqs) != tt.want.Attempts {
				t.Fatalf("server got %d requests, want %d", len(reqs), tt.want.Attempts)
			}
			for i, r := range reqs {
				if r.URL.Path != "/hook" || r.Method != http.MethodPost {
					t.Errorf("request %d: %s %s, want POST /hook (redirects must not be followed)", i+1, r.Method, r.URL.Path)
				}
				for k, v := range map[string]string{"Content-Type": "application/json", "User-Agent": "auth-webhook/1", webhook.HeaderID: "42"} {
					if r.Header.Get(k) != v {
						t.Errorf("request %d: %s = %q, want %q", i+1, k, r.Header.Get(k), v)
					}
				}
				if string(srv.bodies[i]) != string(body) {
					t.Errorf("request %d: body %q, want %q", i+1, srv.bodies[i], body)
				}
			}
		})
	}
}

func TestSendResignsEachAttempt(t *testing.T) {
	srv := newServer(t, 500, 500, 200)
	srv.verify = []string{testSecret, "whsec_previous"}
	var clock atomic.Int64
	clock.Store(1_800_000_000)
	s, _ := sender(t, webhook.SenderOptions{Now: func() time.Time { return time.Unix(clock.Add(7), 0) }})
	res := s.Send(context.Background(), srv.URL, "run-7", []string{testSecret, "whsec_previous"}, []byte(`{}`))
	if res.Outcome != "delivered" || res.Attempts != 3 {
		t.Fatalf("Send = %+v, want delivered after 3 attempts", res)
	}
	seen := map[string]bool{}
	for i, r := range srv.requests() {
		ts, sig := r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature)
		if seen[ts] || seen[sig] {
			t.Errorf("request %d reuses timestamp %s or signature %s", i+1, ts, sig)
		}
		seen[ts], seen[sig] = true, true
		if strings.Count(sig, "v1=") != 2 {
			t.Errorf("request %d: signature %q, want two entries during a rotation", i+1, sig)
		}
		if id := r.Header.Get(webhook.HeaderID); id != "run-7" {
			t.Errorf("request %d: id %q, want run-7 on every attempt", i+1, id)
		}
	}
}

func TestSendBackoff(t *testing.T) {
	srv := newServer(t, 503)
	base, maxWait := 100*time.Millisecond, 300*time.Millisecond
	s, rec := sender(t, webhook.SenderOptions{Attempts: 6, BaseBackoff: base, MaxBackoff: maxWait})
	res := s.Send(context.Background(), srv.URL, "1", []string{testSecret}, nil)
	if res.Outcome != "failed" || res.Attempts != 6 {
		t.Fatalf("Send = %+v, want failed after 6 attempts", res)
	}
	caps := []time.Duration{100, 200, 300, 300, 300}
	if len(rec.waits) != len(caps) {
		t.Fatalf("waited %d times, want %d", len(rec.waits), len(caps))
	}
	for i, w := range rec.waits {
		if c := caps[i] * time.Millisecond; w < 0 || w > c {
			t.Errorf("wait %d = %s, want within [0, %s]", i+1, w, c)
		}
	}
}

func TestSendContextEnds(t *testing.T) {
	srv := newServer(t, 500)
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{}
	s := webhook.NewSender(webhook.SenderOptions{
		Guard:   webhook.NewGuard([]string{"127.0.0.1"}, nil),
		Observe: rec.observe,
		Sleep: func(ctx context.Context, _ time.Duration) error {
			cancel() // the process shuts down while waiting to retry
			return ctx.Err()
		},
	})
	res := s.Send(ctx, srv.URL, "1", []string{testSecret}, nil)
	want := webhook.Result{Outcome: "failed", Attempts: 1, Status: 500, Err: context.Canceled.Error()}
	if res != want {
		t.Fatalf("Send = %+v, want %+v", res, want)
	}
	if n := len(srv.requests()); n != 1 {
		t.Fatalf("server got %d requests after the context ended, want 1", n)
	}

	// A context that already ended makes no successful attempt.
	res = s.Send(ctx, srv.URL, "1", []string{testSecret}, nil)
	if res.Outcome != "failed" || res.Attempts != 1 || res.Status != 0 || res.Err != context.Canceled.Error() {
		t.Fatalf("Send with an ended context = %+v", res)
	}
	if want := []string{"retried", "failed", "failed"}; !slices.Equal(rec.outcomes, want) {
		t.Fatalf("observed %q, want %q", rec.outcomes, want)
	}
}

func TestSendTimeout(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select { // answer only once the client gave up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	s, rec := sender(t, webhook.SenderOptions{Timeout: 50 * time.Millisecond, Attempts: 2})
	res := s.Send(context.Background(), srv.URL, "1", []string{testSecret}, nil)
	if res.Outcome != "failed" || res.Attempts != 2 || res.Status != 0 || !strings.Contains(res.Err, "deadline exceeded") {
		t.Fatalf("Send = %+v, want failed after 2 timed-out attempts", res)
	}
	if want := []string{"retried", "failed"}; !slices.Equal(rec.outcomes, want) {
		t.Fatalf("observed %q, want %q", rec.outcomes, want)
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("server got %d requests, want 2", n)
	}
}

func TestSendRefused(t *testing.T) {
	srv := newServer(t, 200)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	r := resolver(map[string][]string{
		"private.test": {"10.0.0.1"},
		"local.test":   {"127.0.0.1"},
	})
	// rebind.test first resolves to a public address, then to loopback.
	r.answers["rebind.test"] = [][]string{{"93.184.216.34"}, {"127.0.0.1"}}
	tests := []struct {
		name     string
		allowed  []string
		url      string
		attempts int // 0: refused before any attempt
		status   int
		outcome  string
		reason   string
	}{
		{"name resolving to a private address", nil, "http://private.test:" + port + "/", 1, 0, "refused",
			"Webhook URL host 'private.test' resolves to 10.0.0.1, a private address; list the host in AUTH_WEBHOOK_ALLOWED_HOSTS to allow it."},
		{"loopback not allow-listed", nil, srv.URL, 1, 0, "refused",
			"Webhook URL host '127.0.0.1' is a loopback address; list the host in AUTH_WEBHOOK_ALLOWED_HOSTS to allow it."},
		{"allow-listed on another port", []string{"local.test:1"}, "http://local.test:" + port + "/", 1, 0, "refused",
			"Webhook URL host 'local.test' resolves to 127.0.0.1, a loopback address; list the host in AUTH_WEBHOOK_ALLOWED_HOSTS to allow it."},
		{"rebinding after the check", nil, "http://rebind.test:" + port + "/", 1, 0, "refused",
			"Webhook URL host 'rebind.test' resolves to 127.0.0.1, a loopback address; list the host in AUTH_WEBHOOK_ALLOWED_HOSTS to allow it."},
		{"bad scheme", nil, "gopher://local.test/", 0, 0, "refused", "Webhook URL scheme 'gopher' is not allowed; use http or https."},
		// The name is known only to the guard's resolver: delivery proves
		// the dial connects to the address the guard checked.
		{"allow-listed name", []string{"local.test"}, "http://local.test:" + port + "/", 1, 200, "delivered", ""},
		{"allow-listed name and port", []string{"local.test:" + port}, "http://local.test:" + port + "/", 1, 200, "delivered", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := webhook.NewGuard(tt.allowed, r)
			if tt.name == "rebinding after the check" {
				if _, err := g.CheckURL(context.Background(), tt.url); err != nil {
					t.Fatalf("CheckURL at registration: %v", err)
				}
			}
			before := len(srv.requests())
			s, rec := sender(t, webhook.SenderOptions{Guard: g})
			res := s.Send(context.Background(), tt.url, "1", []string{testSecret}, nil)
			want := webhook.Result{Outcome: tt.outcome, Attempts: tt.attempts, Status: tt.status, Err: tt.reason}
			if res != want {
				t.Fatalf("Send = %+v\nwant   %+v", res, want)
			}
			if !slices.Equal(rec.outcomes, []string{tt.outcome}) {
				t.Fatalf("observed %q, want [%s]", rec.outcomes, tt.outcome)
			}
			reached := len(srv.requests()) - before
			if wantReached := map[bool]int{true: 1, false: 0}[tt.outcome == "delivered"]; reached != wantReached {
				t.Fatalf("server reached %d times, want %d", reached, wantReached)
			}
		})
	}
}

func TestSendWithoutSecret(t *testing.T) {
	srv := newServer(t, 200)
	s, rec := sender(t, webhook.SenderOptions{})
	res := s.Send(context.Background(), srv.URL, "1", []string{""}, nil)
	if res.Outcome != "failed" || res.Attempts != 0 || len(srv.requests()) != 0 {
		t.Fatalf("Send without a secret = %+v, want failed before any attempt", res)
	}
	if !slices.Equal(rec.outcomes, []string{"failed"}) {
		t.Fatalf("observed %q", rec.outcomes)
	}
}

func TestSendIgnoresProxy(t *testing.T) {
	srv := newServer(t, 200)
	var proxied atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { proxied.Store(true) }))
	t.Cleanup(proxy.Close)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	g := webhook.NewGuard([]string{"local.test"}, resolver(map[string][]string{"local.test": {"127.0.0.1"}}))
	s, _ := sender(t, webhook.SenderOptions{Guard: g})
	res := s.Send(context.Background(), "http://local.test:"+port+"/", "1", []string{testSecret}, nil)
	if res.Outcome != "delivered" || proxied.Load() {
		t.Fatalf("Send = %+v, proxied %v; want delivered directly", res, proxied.Load())
	}
}

func TestSendNetworkErrorRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s, rec := sender(t, webhook.SenderOptions{Attempts: 3})
	res := s.Send(context.Background(), "http://"+addr+"/", "1", []string{testSecret}, nil)
	if res.Outcome != "failed" || res.Attempts != 3 || res.Status != 0 || !strings.Contains(res.Err, "connection refused") {
		t.Fatalf("Send = %+v, want failed after 3 refused connections", res)
	}
	if want := []string{"retried", "retried", "failed"}; !slices.Equal(rec.outcomes, want) {
		t.Fatalf("observed %q, want %q", rec.outcomes, want)
	}
}
