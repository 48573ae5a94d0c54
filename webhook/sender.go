package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Delivery outcomes, as in Result.Outcome and, with OutcomeRetried, as
// passed to SenderOptions.Observe.
const (
	// OutcomeDelivered: the target answered 2xx.
	OutcomeDelivered = "delivered"
	// OutcomeFailed: attempts exhausted, a non-retryable answer (including
	// any 3xx: redirects are not followed), or the context ended.
	OutcomeFailed = "failed"
	// OutcomeRefused: the URL or the address it resolved to at send time
	// is refused by the Guard.
	OutcomeRefused = "refused"
	// OutcomeRetried: an attempt failed and another follows (reported to
	// Observe only).
	OutcomeRetried = "retried"
)

// Defaults of SenderOptions.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultAttempts    = 4
	DefaultBaseBackoff = 500 * time.Millisecond
	DefaultMaxBackoff  = 8 * time.Second
)

// UserAgent is the User-Agent of every delivery.
const UserAgent = "auth-webhook/1"

// maxResponseBytes is how much of an answer's body is read (and discarded).
const maxResponseBytes = 64 << 10

// SenderOptions configure a Sender. Zero values take the defaults.
type SenderOptions struct {
	// Guard checks targets; nil means a Guard with no allowed hosts and
	// the default resolver.
	Guard *Guard
	// Timeout bounds each attempt, reading the answer included
	// (DefaultTimeout).
	Timeout time.Duration
	// Attempts is the total number of attempts (DefaultAttempts).
	Attempts int
	// BaseBackoff is the cap of the wait before the second attempt; the
	// cap doubles with each further attempt (DefaultBaseBackoff).
	BaseBackoff time.Duration
	// MaxBackoff caps every wait (DefaultMaxBackoff).
	MaxBackoff time.Duration
	// Observe, if set, is called with OutcomeRetried before each retry and
	// with the final outcome of each Send (for metrics).
	Observe func(outcome string)
	// Sleep waits d or until ctx ends, returning ctx's error then; nil
	// means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock that timestamps attempts; nil means time.Now.
	Now func() time.Time
}

// Result is what became of a Send.
type Result struct {
	Outcome  string // OutcomeDelivered, OutcomeFailed or OutcomeRefused
	Attempts int    // attempts made (0 when the URL was refused before any)
	Status   int    // the HTTP status of the last attempt (0 when none)
	Err      string // why the last attempt failed ("" when delivered)
}

// Sender delivers webhooks. It dials only addresses its Guard checked at
// send time, follows no redirects and ignores proxy settings. A Sender is
// safe for concurrent use.
type Sender struct {
	guard     *Guard
	client    *http.Client
	dialer    net.Dialer
	timeout   time.Duration
	attempts  int
	base, max time.Duration
	observe   func(string)
	sleep     func(context.Context, time.Duration) error
	now       func() time.Time
	jitter    func(n int64) int64
}

// NewSender returns a Sender configured by opts.
func NewSender(opts SenderOptions) *Sender {
	s := &Sender{
		guard:    opts.Guard,
		timeout:  opts.Timeout,
		attempts: opts.Attempts,
		base:     opts.BaseBackoff,
		max:      opts.MaxBackoff,
		observe:  opts.Observe,
		sleep:    opts.Sleep,
		now:      opts.Now,
		jitter:   rand.Int64N,
	}
	if s.guard == nil {
		s.guard = NewGuard(nil, nil)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.attempts <= 0 {
		s.attempts = DefaultAttempts
	}
	if s.base <= 0 {
		s.base = DefaultBaseBackoff
	}
	if s.max <= 0 {
		s.max = DefaultMaxBackoff
	}
	if s.observe == nil {
		s.observe = func(string) {}
	}
	if s.sleep == nil {
		s.sleep = sleep
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.dialer = net.Dialer{Timeout: s.timeout, KeepAlive: 30 * time.Second}
	s.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would dial what the Guard did not check
			DialContext:           s.dial,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   s.timeout,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s
}

// CloseIdleConnections closes the Sender's idle connections.
func (s *Sender) CloseIdleConnections() { s.client.CloseIdleConnections() }

// dial resolves addr's host through the Guard, checks every address and
// connects to a checked one: what is dialed is what was checked.
func (s *Sender) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("webhook: dial %s: %w", addr, err)
	}
	addrs, err := s.guard.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	if rerr := s.guard.check(addr, host, port, addrs); rerr != nil {
		return nil, rerr
	}
	var errs []error
	for _, a := range addrs {
		conn, err := s.dialer.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// Send POSTs body to rawURL, signed with secrets (the current one first),
// with HeaderID set to id. It retries network errors, timeouts, 408, 425,
// 429 and 5xx answers up to the configured number of attempts, waiting an
// exponential backoff with full jitter in between; any other non-2xx
// answer, a refused target, or the end of ctx stops it. Each attempt is
// signed with a fresh timestamp.
func (s *Sender) Send(ctx context.Context, rawURL, id string, secrets []string, body []byte) Result {
	if _, _, err := s.guard.parse(rawURL); err != nil {
		return s.finish(Result{Outcome: OutcomeRefused, Err: err.Error()})
	}
	if !slices.ContainsFunc(secrets, func(x string) bool { return x != "" }) {
		return s.finish(Result{Outcome: OutcomeFailed, Err: "no signing secret"})
	}
	var res Result
	for {
		res.Attempts++
		status, err := s.attempt(ctx, rawURL, id, secrets, body)
		res.Status, res.Err = status, ""
		if err != nil {
			res.Err = err.Error()
		}
		var refused *RefusedError
		switch {
		case err == nil && status >= 200 && status < 300:
			res.Outcome = OutcomeDelivered
			return s.finish(res)
		case errors.As(err, &refused):
			res.Outcome, res.Err = OutcomeRefused, refused.Error()
			return s.finish(res)
		case ctx.Err() != nil:
			res.Outcome, res.Err = OutcomeFailed, ctx.Err().Error()
			return s.finish(res)
		}
		if err == nil {
			res.Err = statusError(status)
		}
		if (err == nil && !retryable(status)) || res.Attempts >= s.attempts {
			res.Outcome = OutcomeFailed
			return s.finish(res)
		}
		s.observe(OutcomeRetried)
		if err := s.sleep(ctx, s.backoff(res.Attempts)); err != nil {
			res.Outcome, res.Err = OutcomeFailed, err.Error()
			return s.finish(res)
		}
	}
}

// finish reports res's outcome to Observe and returns res.
func (s *Sender) finish(res Result) Result {
	s.observe(res.Outcome)
	return res
}

// attempt makes one signed POST and returns the answer's status, or the
// error that prevented one.
func (s *Sender) attempt(ctx context.Context, rawURL, id string, secrets []string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := s.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, Timestamp(ts))
	req.Header.Set(HeaderSignature, Sign(secrets, ts, body))
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is known to the caller
		}
		return 0, err
	}
	defer resp.Body.Close()
	// The answer's body is read only to let the connection be reused; its
	// content, and an error reading it, do not change the outcome.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	return resp.StatusCode, nil
}

// backoff returns the wait after the n-th failed attempt: a random
// duration up to min(base·2^(n-1), max).
func (s *Sender) backoff(n int) time.Duration {
	ceiling := s.base
	for i := 1; i < n && ceiling < s.max; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, s.max)
	return time.Duration(s.jitter(int64(ceiling) + 1))
}

// retryable reports whether an answer with status is worth retrying.
func retryable(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return true
	default:
		return status >= 500 && status <= 599
	}
}

// statusError describes a non-2xx answer.
func statusError(status int) string {
	msg := fmt.Sprintf("answered %d %s", status, http.StatusText(status))
	if status >= 300 && status < 400 {
		msg += "; redirects are not followed"
	}
	return msg
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
