// Package loadtest drives HTTP load at a server: a closed loop of a fixed
// number of keep-alive connections sending back to back (with vegeta), which
// finds the highest throughput, and an open loop at a constant arrival rate
// (a schedule of its own, see openLoop), which measures latency without
// coordinated omission (a request is due on schedule whether or not earlier
// ones have been answered, and a late one is timed from when it was due).
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Request is one HTTP request to send.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// Check judges an answer to req: nil when it is right. A request that
// failed, answered a status other than 2xx, or whose answer Check refuses
// counts as an error.
type Check func(req Request, status int, body []byte) error

// Phase describes one run of load.
type Phase struct {
	// Requests are sent in turn, from the first again after the last.
	Requests []Request
	// Check judges each answer after the run (nil: any 2xx is right).
	Check Check
	// Duration is how long requests are sent.
	Duration time.Duration
	// Connections is the number of connections of a closed loop (default
	// 16); an open loop uses one per 250 requests per second (16 to 256).
	Connections int
	// Rate is the arrival rate of an open loop, in requests per second;
	// zero makes a closed loop.
	Rate float64
	// Timeout bounds each request (default 10s).
	Timeout time.Duration
}

// Result sums up a phase.
type Result struct {
	// Rate is the arrival rate asked for (0 for a closed loop).
	Rate float64 `json:"rate,omitempty"`
	// Connections is the loop's connection count.
	Connections int `json:"connections,omitempty"`
	// Requests is the number of requests sent and answered or failed.
	Requests int `json:"requests"`
	// Errors counts failed requests, non-2xx answers and wrong answers.
	Errors int `json:"errors"`
	// ErrorSamples holds up to three distinct error messages.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Elapsed is the time from the first request sent to the last answer.
	Elapsed time.Duration `json:"elapsed"`
	// Throughput is correct answers per second over Elapsed.
	Throughput float64 `json:"throughput"`
	// Latency holds the latency percentiles of every request.
	Latency Percentiles `json:"latency"`
	// latencies are every request's latency, sorted, for Merge.
	latencies []time.Duration
}

// Merge sums up several runs of the same kind (rounds of one measure
// interleaved with another's, so that both see the same conditions) as one:
// requests, errors and elapsed times add up, the throughput is the correct
// answers over the summed elapsed times, and the percentiles are those of
// every request of every run. Rate and Connections are the first run's.
// The runs must come from Run in this process: a Result read back from
// JSON has no latencies to merge, and Merge refuses it.
func Merge(rs ...Result) (Result, error) {
	if len(rs) == 0 {
		return Result{}, errors.New("loadtest: nothing to merge")
	}
	out := Result{Rate: rs[0].Rate, Connections: rs[0].Connections}
	var lat []time.Duration
	seen := map[string]bool{}
	for _, r := range rs {
		if len(r.latencies) != r.Requests {
			return Result{}, errors.New("loadtest: a result to merge has no latencies (not from Run in this process)")
		}
		out.Requests += r.Requests
		out.Errors += r.Errors
		out.Elapsed += r.Elapsed
		lat = append(lat, r.latencies...)
		for _, msg := range r.ErrorSamples {
			if len(out.ErrorSamples) < 3 && !seen[msg] {
				seen[msg] = true
				out.ErrorSamples = append(out.ErrorSamples, msg)
			}
		}
	}
	if out.Elapsed > 0 {
		out.Throughput = float64(out.Requests-out.Errors) / out.Elapsed.Seconds()
	}
	out.Latency = Summarize(lat)
	out.latencies = lat
	return out, nil
}

// Run sends the phase's requests and sums up the answers. It stops early,
// with ctx's error, when ctx ends.
func Run(ctx context.Context, p Phase) (Result, error) {
	if len(p.Requests) == 0 {
		return Result{}, errors.New("loadtest: no requests")
	}
	if p.Duration <= 0 {
		return Result{}, errors.New("loadtest: no duration")
	}
	if p.Connections <= 0 {
		p.Connections = 16
	}
	if p.Timeout <= 0 {
		p.Timeout = 10 * time.Second
	}
	if p.Rate > 0 {
		all, err := openLoop(ctx, p)
		if err != nil {
			return Result{}, err
		}
		return summarize(Result{Rate: p.Rate, Connections: openConnections(p.Rate)}, all, p), nil
	}
	all, err := closedLoop(ctx, p)
	if err != nil {
		return Result{}, err
	}
	return summarize(Result{Connections: p.Connections}, all, p), nil
}

// sample is the outcome of one request.
type sample struct {
	req     int // index in the phase's Requests (-1: unknown)
	status  int // 0 when the request failed
	body    []byte
	err     error
	start   time.Time
	latency time.Duration
}

// closedLoop sends the phase's requests back to back on p.Connections
// keep-alive connections (vegeta) and returns every request's outcome.
func closedLoop(ctx context.Context, p Phase) ([]sample, error) {
	// A transport of our own, so that its connections can be closed after
	// the run: a server's graceful shutdown waits for connections that
	// were opened but never used.
	tr := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	n := uint64(p.Connections)
	atk := vegeta.NewAttacker(
		vegeta.Client(&http.Client{Transport: tr}), // first: the options below set it up
		vegeta.KeepAlive(true),
		vegeta.Timeout(p.Timeout),
		vegeta.Redirects(vegeta.NoFollow),
		vegeta.Workers(n), vegeta.MaxWorkers(n),
		vegeta.Connections(p.Connections), vegeta.MaxConnections(p.Connections),
	)
	index := map[string]int{}
	for i, r := range p.Requests {
		if _, ok := index[r.Method+" "+r.URL]; !ok {
			index[r.Method+" "+r.URL] = i
		}
	}
	var next atomic.Uint64
	targeter := func(t *vegeta.Target) error {
		r := p.Requests[int((next.Add(1)-1)%uint64(len(p.Requests)))]
		t.Method, t.URL, t.Header, t.Body = r.Method, r.URL, r.Header, r.Body
		return nil
	}
	// Results are only kept here; they are judged after the run, so that
	// checking answers takes no CPU from the run itself.
	var all []sample
	results := atk.Attack(targeter, vegeta.ConstantPacer{}, p.Duration, "") // no pacing: back to back
	stopped := false
	for r := range results {
		s := sample{req: -1, status: int(r.Code), body: r.Body, start: r.Timestamp, latency: r.Latency}
		if i, ok := index[r.Method+" "+r.URL]; ok {
			s.req = i
		}
		if r.Error != "" {
			s.err = errors.New(r.Error)
		}
		all = append(all, s)
		if !stopped && ctx.Err() != nil {
			atk.Stop()
			stopped = true
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return all, nil
}

// summarize judges the answers and computes the figures.
func summarize(res Result, all []sample, p Phase) Result {
	res.Requests = len(all)
	if len(all) == 0 {
		return res
	}
	// Requests of one method and URL differ only by body, which the
	// answers of the service's batch check repeat: an answer may be
	// judged against any of them.
	byURL := map[string][]Request{}
	for _, r := range p.Requests {
		byURL[r.Method+" "+r.URL] = append(byURL[r.Method+" "+r.URL], r)
	}
	lat := make([]time.Duration, 0, len(all))
	first, last := all[0].start, all[0].start.Add(all[0].latency)
	seen := map[string]bool{}
	ok := 0
	for _, s := range all {
		lat = append(lat, s.latency)
		if s.start.Before(first) {
			first = s.start
		}
		if end := s.start.Add(s.latency); end.After(last) {
			last = end
		}
		var reqs []Request
		var name string
		if s.req >= 0 {
			r := p.Requests[s.req]
			name, reqs = r.Method+" "+r.URL, byURL[r.Method+" "+r.URL]
		}
		err := judge(name, s, reqs, p.Check)
		if err == nil {
			ok++
			continue
		}
		res.Errors++
		if msg := err.Error(); len(res.ErrorSamples) < 3 && !seen[msg] {
			seen[msg] = true
			res.ErrorSamples = append(res.ErrorSamples, msg)
		}
	}
	res.Elapsed = last.Sub(first)
	if res.Elapsed > 0 {
		res.Throughput = float64(ok) / res.Elapsed.Seconds()
	}
	res.Latency = Summarize(lat)
	res.latencies = lat
	return res
}

// judge returns why s, the answer to the request named name, is an error,
// or nil. reqs are the requests it may answer (same method and URL); the
// answer must satisfy check for one of them.
func judge(name string, s sample, reqs []Request, check Check) error {
	if s.status == 0 {
		return fmt.Errorf("%s: %v", name, s.err)
	}
	if s.status < 200 || s.status > 299 {
		return fmt.Errorf("%s: status %d", name, s.status)
	}
	if s.err != nil {
		return fmt.Errorf("%s: %v", name, s.err)
	}
	if check == nil {
		return nil
	}
	if len(reqs) == 0 {
		return fmt.Errorf("%s: answer to a request never sent", name)
	}
	var err error
	for _, req := range reqs {
		if err = check(req, s.status, s.body); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", name, err)
}

// Percentiles are latency percentiles, exact (nearest rank over every
// sample).
type Percentiles struct {
	P50  time.Duration `json:"p50"`
	P90  time.Duration `json:"p90"`
	P99  time.Duration `json:"p99"`
	P999 time.Duration `json:"p999"`
	Max  time.Duration `json:"max"`
}

// Summarize returns the percentiles of samples (which it sorts).
func Summarize(samples []time.Duration) Percentiles {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	return Percentiles{
		P50:  Quantile(samples, 0.50),
		P90:  Quantile(samples, 0.90),
		P99:  Quantile(samples, 0.99),
		P999: Quantile(samples, 0.999),
		Max:  Quantile(samples, 1),
	}
}

// Quantile is the q-quantile (0 < q ≤ 1) of sorted samples by the nearest
// rank method: the smallest sample with at least q of the samples at or
// below it. It is zero for no samples.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The rank is ⌈q·n⌉; q·n a hair above an integer by floating-point
	// error (0.99·100 is 99.00000000000001) must not skip a rank.
	rank := min(max(int(math.Ceil(q*float64(n)-1e-9)), 1), n)
	return sorted[rank-1]
}
