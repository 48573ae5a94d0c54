// Package client is the Go client of auth-server, the multi-tenant RBAC
// authorization service.
//
// A Client has one method per route of the service. Each takes a
// context.Context first and returns typed values: HasPermission returns a
// bool, UserPermissions a []string, WhichUsersCan a []Membership, and so on.
//
// # Errors never read as denials
//
// A check answers (false, nil) only when the service said no. Any failure
// to get a decision is a non-nil error:
//
//   - a refused, dropped or timed-out connection, or an open circuit
//     breaker, matches ErrUnavailable (errors.Is);
//   - a non-2xx answer is an *APIError (errors.As) that also matches
//     ErrUnauthorized (401, 403), ErrRateLimited (429) or ErrUnavailable
//     (502, 503, 504).
//
// Callers must fail closed on any error.
//
// # Retries
//
// Only idempotent requests (GET, HEAD, PUT and DELETE: every PUT and DELETE
// route of the service is idempotent) are retried, at most
// Options.MaxRetries times, on a transport failure or an answer of 429, 502,
// 503 or 504. Between attempts the client waits an exponential backoff with
// full jitter, or the answer's Retry-After when it has one. POST requests are
// never retried, with one exception: the batch check of API v2
// (V2.CheckBatch), a read that POST carries only for its body.
//
// # Circuit breaker
//
// Each Client (and the copies made by WithToken) shares one circuit breaker
// (github.com/eapache/go-resiliency/breaker). A call counts as a failure when
// it ends, after its retries, in a transport failure or an answer of 5xx or
// 429; 4xx answers and calls abandoned by their caller's context never count.
// After Options.BreakerErrorThreshold failures, with no gap between two of
// them longer than Options.BreakerTimeout, the breaker opens and calls fail
// at once with ErrUnavailable (wrapping breaker.ErrBreakerOpen). After
// BreakerTimeout it lets calls through again (half-open): one failure opens
// it again, BreakerSuccessThreshold successes close it.
//
// # Revisions and consistency
//
// Every change of a tenant's policy gets the tenant's next revision, and
// every answer to a write carries it (the X-Auth-Revision header). A Client
// keeps the highest revision it wrote: LastRevision. The reads of API v2
// that accept a consistency (checks, the lists under roles, users and
// permissions, GetRole and ExportPolicy) send the one of V2.WithConsistency;
// with session consistency (Options.SessionConsistency or
// V2.WithSessionConsistency) they send AtLeast(LastRevision()) once the
// client has written something, so a client always reads its own writes,
// whichever replica answers.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eapache/go-resiliency/breaker"
)

// Defaults of Options.
const (
	DefaultTimeout                 = 10 * time.Second
	DefaultMaxRetries              = 2
	DefaultRetryBaseDelay          = 100 * time.Millisecond
	DefaultRetryMaxDelay           = 2 * time.Second
	DefaultMaxRetryAfter           = 30 * time.Second
	DefaultBreakerErrorThreshold   = 5
	DefaultBreakerSuccessThreshold = 1
	DefaultBreakerTimeout          = 10 * time.Second
	DefaultMaxIdleConnsPerHost     = 32
)

// maxBody bounds the bytes read from one answer.
const maxBody = 1 << 20

// revisionHeader carries the revision of a write's answer, and the one a
// read was computed at.
const revisionHeader = "X-Auth-Revision"

// maxWait is the longest long poll the service holds (the change feed's
// wait).
const maxWait = 60 * time.Second

// Options configures a Client. Every field but BaseURL is optional: its
// zero value means the default.
type Options struct {
	// BaseURL is where the service is, such as "http://localhost:4000". A
	// path prefix is kept: with "https://gw.example.com/authz" the client
	// calls https://gw.example.com/authz/api/... and .../authz/ping.
	BaseURL string
	// Token is the credential sent as "Authorization: Bearer <Token>": a
	// client key (a UUID4, which is also the tenant) or a bearer token.
	// Without it only Ping, Health and Ready can succeed.
	Token string
	// Timeout bounds each attempt of a request, from sending it to reading
	// the whole answer (default DefaultTimeout). The caller's context bounds
	// the whole call, retries included.
	Timeout time.Duration
	// MaxRetries is how many times an idempotent request is sent again
	// after a retryable failure (default DefaultMaxRetries; negative: never).
	MaxRetries int
	// RetryBaseDelay and RetryMaxDelay shape the backoff before retry n
	// (n = 0, 1, …): a uniformly random wait in
	// [0, min(RetryMaxDelay, RetryBaseDelay·2^n)].
	RetryBaseDelay, RetryMaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits; an answer
	// asking for a longer wait is returned without retrying (default
	// DefaultMaxRetryAfter). A retry is also abandoned when its wait would
	// outlast the caller's context deadline.
	MaxRetryAfter time.Duration
	// BreakerErrorThreshold, BreakerSuccessThreshold and BreakerTimeout are
	// the circuit breaker's settings (see the package documentation).
	BreakerErrorThreshold, BreakerSuccessThreshold int
	BreakerTimeout                                 time.Duration
	// DisableBreaker turns the circuit breaker off.
	DisableBreaker bool
	// MaxIdleConnsPerHost is the number of keep-alive connections kept
	// open to the service (default DefaultMaxIdleConnsPerHost);
	// MaxConnsPerHost caps all connections to it (default 0: no cap).
	MaxIdleConnsPerHost, MaxConnsPerHost int
	// HTTPClient, when set, sends the requests instead of the client's own
	// tuned transport. Its redirect policy is kept; the client's own never
	// follows redirects.
	HTTPClient *http.Client
	// UserAgent is sent as User-Agent (default "auth-go-client").
	UserAgent string
	// SessionConsistency makes every API v2 read that accepts a
	// consistency ask for AtLeast(LastRevision()) once the client has
	// written something (see V2.WithSessionConsistency); a consistency
	// chosen with V2.WithConsistency wins over it.
	SessionConsistency bool
}

// Client calls one auth-server. It is safe for concurrent use.
type Client struct {
	base      string // scheme://host[/prefix], no trailing slash
	token     string
	userAgent string
	timeout   time.Duration
	retries   int
	baseDelay time.Duration
	maxDelay  time.Duration
	maxRA     time.Duration
	http      *http.Client
	transport *http.Transport // nil when Options.HTTPClient was given
	breaker   *breaker.Breaker
	session   bool
	written   *revision // the highest revision this client wrote
}

// revision is the highest revision seen, safe for concurrent use.
type revision struct{ n atomic.Int64 }

// observe raises the revision to n if n is higher.
func (r *revision) observe(n int64) {
	for {
		cur := r.n.Load()
		if n <= cur || r.n.CompareAndSwap(cur, n) {
			return
		}
	}
}

// LastRevision is the highest revision of the tenant's policy that a write
// of this client (API v1 or v2) committed, read from the answers'
// X-Auth-Revision header; 0 before the first such write. It is safe for
// concurrent use. A copy made by WithToken starts again from 0: it writes
// another tenant.
func (c *Client) LastRevision() int64 { return c.written.n.Load() }

// New returns a Client for the service at opts.BaseURL.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("auth: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("auth: base URL %q: want http(s)://host[:port][/prefix]", opts.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("auth: base URL %q: must have no query, fragment or user info", opts.BaseURL)
	}
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), strings.TrimRight(u.RawPath, "/")
	c := &Client{
		base:      u.String(),
		token:     opts.Token,
		userAgent: or(opts.UserAgent, "auth-go-client"),
		timeout:   or(opts.Timeout, DefaultTimeout),
		retries:   or(opts.MaxRetries, DefaultMaxRetries),
		baseDelay: or(opts.RetryBaseDelay, DefaultRetryBaseDelay),
		maxDelay:  or(opts.RetryMaxDelay, DefaultRetryMaxDelay),
		maxRA:     or(opts.MaxRetryAfter, DefaultMaxRetryAfter),
		session:   opts.SessionConsistency,
		written:   &revision{},
	}
	if c.retries < 0 {
		c.retries = 0
	}
	if c.maxDelay < c.baseDelay {
		c.maxDelay = c.baseDelay
	}
	if opts.HTTPClient != nil {
		c.http = opts.HTTPClient
	} else {
		c.transport = newTransport(opts)
		c.http = &http.Client{
			Transport: c.transport,
			// A redirect is returned as an *APIError: the credential is
			// never sent anywhere but BaseURL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if !opts.DisableBreaker {
		c.breaker = breaker.New(
			or(opts.BreakerErrorThreshold, DefaultBreakerErrorThreshold),
			or(opts.BreakerSuccessThreshold, DefaultBreakerSuccessThreshold),
			or(opts.BreakerTimeout, DefaultBreakerTimeout))
	}
	return c, nil
}

// or returns v, or def when v is zero.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// newTransport is a transport tuned for many small requests to one host:
// keep-alive connections pooled per host, bounded dial, TLS and header
// waits.
func newTransport(opts Options) *http.Transport {
	timeout := or(opts.Timeout, DefaultTimeout)
	dialer := &net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second}
	perHost := or(opts.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
	// The attempt's context bounds a request by timeout; a long poll of the
	// change feed may wait up to maxWait more for its answer's headers.
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          max(100, perHost),
		MaxIdleConnsPerHost:   perHost,
		MaxConnsPerHost:       opts.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(timeout, 5*time.Second),
		ResponseHeaderTimeout: timeout + maxWait,
		ExpectContinueTimeout: time.Second,
	}
}

// WithToken returns a copy of c that sends token instead. The copy shares
// c's connections and circuit breaker, so one process can serve many
// tenants over one pool.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	cp.written = &revision{}
	return &cp
}

// Close closes the idle connections of the client's own transport. The
// client stays usable.
func (c *Client) Close() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// transportError is a request that got no answer.
type transportError struct {
	method, path string
	err          error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("auth: %s %s: %v: %v", e.method, e.path, ErrUnavailable, e.err)
}

func (e *transportError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// request is one call of the service.
type request struct {
	method, path string
	// body is sent as application/json when it is not nil.
	body []byte
	// retry says whether the request may be sent more than once.
	retry bool
	// read marks a POST that only reads (the batch check): its answer's
	// revision is not one the client wrote.
	read bool
	// wait is how long the service may hold the request (a long poll),
	// added to the attempt's timeout.
	wait time.Duration
	// meta, when not nil, receives what the answer's headers say.
	meta *answerMeta
}

// answerMeta is what a 2xx answer's headers say.
type answerMeta struct {
	// revision is X-Auth-Revision (0 when absent or malformed).
	revision int64
}

// writes reports whether r changes the tenant's policy, so that its
// answer's X-Auth-Revision is a revision the client wrote.
func (r request) writes() bool {
	return r.method != http.MethodGet && r.method != http.MethodHead && !r.read
}

// do sends one call without a body (with its retries, when method is
// idempotent) through the circuit breaker and decodes a 2xx JSON answer
// into out.
func (c *Client) do(ctx context.Context, method, path string, out any) error {
	return c.send(ctx, request{method: method, path: path, retry: idempotent(method)}, out)
}

// send sends r (with its retries) through the circuit breaker and decodes a
// 2xx JSON answer into out.
func (c *Client) send(ctx context.Context, r request, out any) error {
	if c.breaker == nil {
		return c.retry(ctx, r, out)
	}
	var callErr error
	err := c.breaker.Run(func() error {
		callErr = c.retry(ctx, r, out)
		if failsBreaker(ctx, callErr) {
			return callErr
		}
		return nil
	})
	if errors.Is(err, breaker.ErrBreakerOpen) {
		return &transportError{method: r.method, path: r.path, err: err}
	}
	return callErr
}

// failsBreaker reports whether a call's outcome counts as a failure of the
// service: a transport failure or a 5xx or 429 answer, unless the caller's
// own context ended the call.
func failsBreaker(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var te *transportError
	if errors.As(err, &te) {
		return true
	}
	var ae *APIError
	return errors.As(err, &ae) && breakerStatus(ae.StatusCode)
}

// idempotent reports whether a request with method may be sent twice.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// retry sends the request until it succeeds, fails for good, or runs out of
// retries; only a request marked retry is sent more than once.
func (c *Client) retry(ctx context.Context, r request, out any) error {
	retries := 0
	if r.retry {
		retries = c.retries
	}
	for n := 0; ; n++ {
		wait, hasWait, err := c.attempt(ctx, r, out)
		if err == nil || n >= retries || ctx.Err() != nil || !retryable(err) {
			return err
		}
		d := c.backoff(n)
		if hasWait {
			if wait > c.maxRA {
				return err
			}
			d = max(d, wait)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return err
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// retryable reports whether a failed attempt may be repeated.
func retryable(err error) bool {
	var te *transportError
	if errors.As(err, &te) {
		return true
	}
	var ae *APIError
	return errors.As(err, &ae) && retryableStatus(ae.StatusCode)
}

// backoff is the wait before retry n: full jitter over an exponential
// ceiling.
func (c *Client) backoff(n int) time.Duration {
	ceil := c.maxDelay
	if n < 32 && c.baseDelay<<n > 0 && c.baseDelay<<n < ceil {
		ceil = c.baseDelay << n
	}
	return rand.N(ceil + 1)
}

// attempt sends the request once. On a non-2xx answer it also returns the
// answer's Retry-After, if it has one.
func (c *Client) attempt(ctx context.Context, r request, out any) (time.Duration, bool, error) {
	method, path := r.method, r.path
	actx, cancel := context.WithTimeout(ctx, c.timeout+r.wait)
	defer cancel()
	var reqBody io.Reader
	if r.body != nil {
		reqBody = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(actx, method, c.base+path, reqBody)
	if err != nil {
		return 0, false, fmt.Errorf("auth: %s %s: %w", method, path, err)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, false, &transportError{method: method, path: path, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return 0, false, &transportError{method: method, path: path, err: err}
	}
	if len(body) > maxBody {
		return 0, false, fmt.Errorf("auth: %s %s: answer larger than %d bytes", method, path, maxBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		wait, ok := retryAfter(resp.Header.Get("Retry-After"))
		reason, details := errorDetails(body)
		return wait, ok, &APIError{
			StatusCode: resp.StatusCode, Message: errorMessage(resp.StatusCode, body),
			Reason: reason, Details: details, Body: body, Method: method, Path: path,
		}
	}
	if rev, err := strconv.ParseInt(resp.Header.Get(revisionHeader), 10, 64); err == nil && rev > 0 {
		if r.meta != nil {
			r.meta.revision = rev
		}
		if r.writes() {
			c.written.observe(rev)
		}
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return 0, false, fmt.Errorf("auth: %s %s: decode answer: %w", method, path, err)
		}
	}
	return 0, false, nil
}

// errorMessage is the message of the service's error envelope, or the
// status text.
func errorMessage(status int, body []byte) string {
	var env struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal(body, &env) == nil && env.Message != nil && *env.Message != "" {
		return *env.Message
	}
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "status " + strconv.Itoa(status)
}

// errorDetails is details.reason and details of the service's error
// envelope (API v2 and the v1 errors that carry them); "" and nil when the
// body has none.
func errorDetails(body []byte) (string, map[string]any) {
	var env struct {
		Details map[string]any `json:"details"`
	}
	if json.Unmarshal(body, &env) != nil || env.Details == nil {
		return "", nil
	}
	reason, _ := env.Details["reason"].(string)
	return reason, env.Details
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		if s > int64(24*time.Hour/time.Second) {
			s = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}
