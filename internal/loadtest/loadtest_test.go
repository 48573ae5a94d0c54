package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1) // 1 … 100
	}
	cases := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"none", nil, 0.5, 0},
		{"one", []time.Duration{7}, 0.999, 7},
		{"median of 100", hundred, 0.5, 50},
		{"p90 of 100", hundred, 0.9, 90},
		{"p99 of 100 (0.99·100 is a hair above 99)", hundred, 0.99, 99},
		{"p99.9 of 100", hundred, 0.999, 100},
		{"max", hundred, 1, 100},
		{"p50 of 3 rounds up", []time.Duration{1, 2, 3}, 0.5, 2},
		{"p50 of 4 is the lower middle", []time.Duration{1, 2, 3, 4}, 0.5, 2},
		{"tiny q is the minimum", hundred, 0.0001, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Quantile(tc.samples, tc.q); got != tc.want {
				t.Errorf("Quantile(%d samples, %v) = %v, want %v", len(tc.samples), tc.q, got, tc.want)
			}
		})
	}
}

func TestSummarizeSorts(t *testing.T) {
	samples := []time.Duration{5, 1, 4, 2, 3}
	got := Summarize(samples)
	want := Percentiles{P50: 3, P90: 5, P99: 5, P999: 5, Max: 5}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
}

func TestJudge(t *testing.T) {
	req := Request{Method: "GET", URL: "http://x/a"}
	wantBody := func(_ Request, _ int, body []byte) error {
		if string(body) != "ok" {
			return fmt.Errorf("body %q", body)
		}
		return nil
	}
	cases := []struct {
		name   string
		res    sample
		reqs   []Request
		check  Check
		errHas string // "" for no error
	}{
		{"right", sample{status: 200, body: []byte("ok")}, []Request{req}, wantBody, ""},
		{"no check", sample{status: 204}, nil, nil, ""},
		{"transport error", sample{status: 0, err: errors.New("connection refused")}, []Request{req}, wantBody, "connection refused"},
		{"status 500", sample{status: 500, err: errors.New("500 Internal Server Error"), body: []byte("ok")}, []Request{req}, wantBody, "status 500"},
		{"status 302", sample{status: 302, body: []byte("ok")}, []Request{req}, nil, "status 302"},
		{"wrong body", sample{status: 200, body: []byte("no")}, []Request{req}, wantBody, `body "no"`},
		{"body cut short", sample{status: 200, body: []byte("o"), err: errors.New("unexpected EOF")}, []Request{req}, wantBody, "unexpected EOF"},
		{"answer to nothing sent", sample{status: 200, body: []byte("ok")}, nil, wantBody, "never sent"},
		{"any request of the URL will do", sample{status: 200, body: []byte("ok")},
			[]Request{{URL: "x"}, req}, func(r Request, _ int, body []byte) error {
				if r.URL != req.URL {
					return errors.New("not this one")
				}
				return nil
			}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := judge(req.Method+" "+req.URL, tc.res, tc.reqs, tc.check)
			switch {
			case tc.errHas == "" && err != nil:
				t.Errorf("judge = %v, want nil", err)
			case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
				t.Errorf("judge = %v, want an error holding %q", err, tc.errHas)
			}
		})
	}
}

// TestRun drives a test server in both loops: every request is answered
// and judged, and wrong answers are counted as errors. Nothing about time
// is asserted.
func TestRun(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every tenth answer is wrong.
		if n.Add(1)%10 == 0 {
			fmt.Fprint(w, "wrong")
			return
		}
		fmt.Fprint(w, r.URL.Path)
	}))
	defer srv.Close()
	reqs := []Request{{Method: "GET", URL: srv.URL + "/a"}, {Method: "GET", URL: srv.URL + "/b"}}
	echo := func(r Request, _ int, body []byte) error {
		if !strings.HasSuffix(r.URL, string(body)) {
			return fmt.Errorf("answer %q", body)
		}
		return nil
	}
	cases := []struct {
		name  string
		phase Phase
	}{
		{"closed loop", Phase{Requests: reqs, Check: echo, Duration: 100 * time.Millisecond, Connections: 4}},
		{"open loop", Phase{Requests: reqs, Check: echo, Duration: 100 * time.Millisecond, Rate: 200}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n.Store(0)
			res, err := Run(context.Background(), tc.phase)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests < 10 {
				t.Fatalf("%d requests, want at least 10", res.Requests)
			}
			if want := int(n.Load() / 10); res.Errors != want {
				t.Errorf("%d errors, want %d (every tenth of %d answers)", res.Errors, want, n.Load())
			}
			if len(res.ErrorSamples) == 0 || len(res.ErrorSamples) > 2 {
				t.Errorf("ErrorSamples = %q, want one per URL", res.ErrorSamples)
			}
			for _, s := range res.ErrorSamples {
				if !strings.Contains(s, `answer "wrong"`) {
					t.Errorf("ErrorSamples = %q, want them about the wrong answer", res.ErrorSamples)
				}
			}
			if res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 || res.Throughput <= 0 {
				t.Errorf("figures %+v: latencies or throughput missing", res)
			}
			if want := map[bool]int{true: 4, false: 16}[tc.phase.Rate == 0]; res.Connections != want {
				t.Errorf("Connections = %d, want %d", res.Connections, want)
			}
		})
	}
}

func TestRunRefusesEmptyPhases(t *testing.T) {
	for _, p := range []Phase{{Duration: time.Second}, {Requests: []Request{{Method: "GET", URL: "http://x"}}}} {
		if _, err := Run(context.Background(), p); err == nil {
			t.Errorf("Run(%+v) succeeded, want an error", p)
		}
	}
}

func TestRender(t *testing.T) {
	ws, err := render([]Request{
		{Method: "GET", URL: "http://127.0.0.1:9/api/x?a=b%20c", Header: http.Header{"Authorization": {"Bearer k"}}},
		{Method: "POST", URL: "http://127.0.0.1:9/api/v2/check", Body: []byte(`{"checks":[]}`)},
		{Method: "POST", URL: "http://127.0.0.1:9/api/role/r"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /api/x?a=b%20c HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAuthorization: Bearer k\r\n\r\n",
		"POST /api/v2/check HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 13\r\n\r\n{\"checks\":[]}",
		"POST /api/role/r HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 0\r\n\r\n",
	}
	for i, w := range ws {
		if string(w.bytes) != want[i] || w.index != i || w.addr != "127.0.0.1:9" {
			t.Errorf("request %d: %q (index %d, addr %s), want %q", i, w.bytes, w.index, w.addr, want[i])
		}
	}
	for _, bad := range [][]Request{
		{{Method: "GET", URL: "https://127.0.0.1:9/"}},
		{{Method: "GET", URL: "http://127.0.0.1:9/"}, {Method: "GET", URL: "http://127.0.0.1:10/"}},
		{{Method: "GET", URL: "http://[::1/"}},
	} {
		if _, err := render(bad); err == nil {
			t.Errorf("render(%v) succeeded, want an error", bad)
		}
	}
}

// TestOpenLoopChargesTheWait: when the server stalls, the requests due on
// the stalled connection meanwhile are timed from when they were due, not
// from when the connection could send them (no coordinated omission). The
// bound is a lower one, from the stall the test imposes.
func TestOpenLoopChargesTheWait(t *testing.T) {
	const stall = 150 * time.Millisecond
	var first atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(false, true) {
			time.Sleep(stall)
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	// 16 connections at 800/s: each sends every 20 ms, so about 7 requests
	// fall due on the stalled connection while it waits.
	p := Phase{Requests: []Request{{Method: "GET", URL: srv.URL + "/"}}, Duration: 400 * time.Millisecond, Rate: 800, Timeout: 5 * time.Second}
	all, err := openLoop(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	late := 0
	for _, s := range all {
		if s.err != nil || s.status != 200 {
			t.Fatalf("request failed: %d %v", s.status, s.err)
		}
		if s.latency >= stall/2 {
			late++
		}
	}
	if late < 3 {
		t.Errorf("%d requests were charged half the %v stall or more, want the stalled request and those due behind it (≥ 3)", late, stall)
	}
	if n := len(all); n < 200 {
		t.Errorf("%d requests sent, want the schedule's 320 (at least 200)", n)
	}
}

// TestMerge sums up two runs against a test server (every tenth answer
// wrong) as one, and refuses results that carry no latencies.
func TestMerge(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			fmt.Fprint(w, "wrong")
			return
		}
		fmt.Fprint(w, "right")
	}))
	defer srv.Close()
	right := func(_ Request, _ int, body []byte) error {
		if string(body) != "right" {
			return fmt.Errorf("answer %q", body)
		}
		return nil
	}
	phase := Phase{Requests: []Request{{Method: "GET", URL: srv.URL}}, Check: right, Duration: 50 * time.Millisecond, Connections: 2}
	var runs []Result
	for range 2 {
		res, err := Run(context.Background(), phase)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, res)
	}
	fromJSON := func(r Result) Result {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Result
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		return back
	}
	cases := []struct {
		name    string
		runs    []Result
		refused bool
	}{
		{"two runs", runs, false},
		{"one run is itself", runs[:1], false},
		{"a result read from JSON", []Result{runs[0], fromJSON(runs[1])}, true},
		{"nothing", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Merge(tc.runs...)
			if tc.refused {
				if err == nil {
					t.Fatalf("Merge = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want Result
			var maxLat time.Duration
			for _, r := range tc.runs {
				want.Requests += r.Requests
				want.Errors += r.Errors
				want.Elapsed += r.Elapsed
				maxLat = max(maxLat, r.Latency.Max)
			}
			if got.Requests != want.Requests || got.Errors != want.Errors || got.Elapsed != want.Elapsed {
				t.Errorf("merged %d requests, %d errors in %v; want %d, %d in %v",
					got.Requests, got.Errors, got.Elapsed, want.Requests, want.Errors, want.Elapsed)
			}
			if wantTp := float64(want.Requests-want.Errors) / want.Elapsed.Seconds(); got.Throughput != wantTp {
				t.Errorf("throughput %v, want %v", got.Throughput, wantTp)
			}
			if got.Latency.Max != maxLat || got.Latency.P50 <= 0 || got.Latency.P50 > got.Latency.P99 {
				t.Errorf("latencies %+v: want the slowest of the runs, %v, as the max", got.Latency, maxLat)
			}
			if len(tc.runs) == 1 && got.Latency != tc.runs[0].Latency {
				t.Errorf("latencies %+v, want the run's own %+v", got.Latency, tc.runs[0].Latency)
			}
			if got.Connections != 2 || len(got.ErrorSamples) != 1 {
				t.Errorf("connections %d, error samples %q; want 2 and one sample", got.Connections, got.ErrorSamples)
			}
		})
	}
}
