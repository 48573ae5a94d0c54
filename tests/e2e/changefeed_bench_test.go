package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sort"
	"strconv"
	"testing"
	"time"
)

// The change feed long-poll benchmark's settings.
const (
	// feedWakeMinPause is the shortest time a long poll is left on the
	// server before the write is sent.
	feedWakeMinPause = 20 * time.Millisecond
	// feedWakePauseFactor: the pause is at least this many times the p99 of
	// a poll that does not wait (the server's time to reach its wait).
	feedWakePauseFactor = 10
	// feedNoWaitSamples is the number of polls without wait timed first.
	feedNoWaitSamples = 50
)

// BenchmarkChangeFeedWake measures how soon a long poll of the change feed
// on one replica answers a change committed on another: two auth-server
// processes on one PostgreSQL database and Redis (loopback),
// AUTH_SYNC_INTERVAL=1h as in BenchmarkReplicaPropagation. Each iteration
// sends GET /api/v2/changes?since=<latest>&wait=30s to replica B and, once
// the request is written, leaves it on the server for a pause (at least
// 20 ms, and at least ten times the p99 of the same request with wait=0
// measured first, so that B is inside its wait, not still reading the log,
// when the change commits). Then it writes a role's description on replica
// A (PUT /api/v2/roles/{role}) and times B's answer, which must hold the
// write's revision. It reports the percentiles of the time from A's answer
// to B's answer (0 when B answered first), of the time from sending the
// write, the pause and the no-wait p99; no bound is asserted:
//
//	go test -run '^$' -bench BenchmarkChangeFeedWake -benchtime 200x ./tests/e2e/
func BenchmarkChangeFeedWake(b *testing.B) {
	rs := newReplicaSet(b, 2, "AUTH_SYNC_INTERVAL=1h")
	a, r := rs.nodes[0].s, rs.nodes[1].s
	key := newKey(b)
	hc := &http.Client{Timeout: 45 * time.Second}
	defer hc.CloseIdleConnections()
	auth := "Authorization: Bearer " + key

	since := feedWakeWrite(b, a, key, "created")
	// The time B takes to answer a poll that finds nothing and does not
	// wait: reading the tenant's revision and its log.
	nowait := make([]time.Duration, 0, feedNoWaitSamples)
	for range feedNoWaitSamples {
		start := time.Now()
		pg, err := feedWakePoll(r, hc, key, since, "0s", nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		nowait = append(nowait, time.Since(start))
		if len(pg.Items) != 0 || pg.Revision != since {
			b.Fatalf("B's feed since=%d without wait: %+v, want no items at revision %d", since, pg, since)
		}
	}
	pause := max(feedWakeMinPause, feedWakePauseFactor*nearestRank(nowait, 0.99))

	afterAck := make([]time.Duration, 0, b.N)
	afterSend := make([]time.Duration, 0, b.N)
	pollFirst := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		type answer struct {
			pg  feedPage
			err error
			at  time.Time
		}
		done := make(chan answer, 1)
		written := make(chan struct{})
		go func() {
			var at time.Time
			pg, err := feedWakePoll(r, hc, key, since, "30s", &httptrace.ClientTrace{
				WroteRequest: func(httptrace.WroteRequestInfo) { close(written) },
			}, &at)
			done <- answer{pg, err, at}
		}()
		select {
		case <-written:
		case res := <-done:
			b.Fatalf("iteration %d: the long poll answered before it was sent: %+v, %v", i, res.pg, res.err)
		}
		select {
		case <-time.After(pause):
		case res := <-done:
			b.Fatalf("iteration %d: the long poll since=%d answered before any write: %+v, %v", i, since, res.pg, res.err)
		}
		sent := time.Now()
		resp, err := a.sendBody("PUT", "/api/v2/roles/wake", []byte(fmt.Sprintf(`{"description":"wake %d"}`, i)),
			auth, "Content-Type: application/json")
		acked := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		if resp.status != 200 {
			b.Fatalf("%s: want status 200", resp)
		}
		if serr := a.checkSchema(resp); serr != nil {
			a.mismatches.add(serr)
		}
		wrote, err := strconv.ParseInt(resp.header.Get("X-Auth-Revision"), 10, 64)
		if err != nil {
			b.Fatalf("%s: no X-Auth-Revision: %v", resp, err)
		}
		res := <-done
		if res.err != nil {
			b.Fatal(res.err)
		}
		found := false
		for _, it := range res.pg.Items {
			found = found || it.Revision == wrote
		}
		if !found {
			b.Fatalf("iteration %d: the long poll since=%d answered %+v without the write at revision %d", i, since, res.pg, wrote)
		}
		if !res.at.After(acked) {
			pollFirst++
		}
		afterAck = append(afterAck, max(res.at.Sub(acked), 0))
		afterSend = append(afterSend, res.at.Sub(sent))
		since = wrote
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(nearestRank(afterAck, 0.50)), "p50-ms")
	b.ReportMetric(ms(nearestRank(afterAck, 0.99)), "p99-ms")
	b.ReportMetric(ms(nearestRank(afterAck, 1)), "max-ms")
	b.ReportMetric(ms(nearestRank(afterSend, 0.50)), "after-send-p50-ms")
	b.ReportMetric(ms(nearestRank(afterSend, 0.99)), "after-send-p99-ms")
	b.ReportMetric(ms(pause), "pause-ms")
	b.ReportMetric(ms(nearestRank(nowait, 0.99)), "nowait-p99-ms")
	b.ReportMetric(float64(pollFirst), "poll-first")
	if b.N >= 100 {
		b.Logf("%d wake-ups: A's answer to B's answer p50 %.2f ms, p99 %.2f ms, max %.2f ms; from sending the write p50 %.2f ms, p99 %.2f ms; "+
			"pause %v (no-wait poll p99 %.2f ms); B answered before A %d times",
			b.N, ms(nearestRank(afterAck, 0.5)), ms(nearestRank(afterAck, 0.99)), ms(nearestRank(afterAck, 1)),
			ms(nearestRank(afterSend, 0.5)), ms(nearestRank(afterSend, 0.99)), pause, ms(nearestRank(nowait, 0.99)), pollFirst)
	}
}

// feedWakeWrite writes the description of role "wake" on s and returns the
// write's revision.
func feedWakeWrite(b *testing.B, s *server, key, desc string) int64 {
	b.Helper()
	r, a := s.v2Must(b, key, "PUT", "/roles/wake", fmt.Sprintf(`{"description":%q}`, desc), 201)
	return mustRevision(b, r, a)
}

// feedWakePoll sends GET /api/v2/changes?since=&wait= to s, with trace when
// it is not nil, and reads the page. at, when not nil, receives the time
// the answer's body was read, before it is decoded and checked.
func feedWakePoll(s *server, hc *http.Client, key string, since int64, wait string, trace *httptrace.ClientTrace, at *time.Time) (feedPage, error) {
	var pg feedPage
	ctx := context.Background()
	if trace != nil {
		ctx = httptrace.WithClientTrace(ctx, trace)
	}
	path := fmt.Sprintf("/api/v2/changes?since=%d&wait=%s", since, wait)
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+path, nil)
	if err != nil {
		return pg, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := hc.Do(req)
	if err != nil {
		return pg, fmt.Errorf("GET %s: %v", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if at != nil {
		*at = time.Now()
	}
	if err != nil {
		return pg, fmt.Errorf("GET %s: read body: %v", path, err)
	}
	rr := response{method: "GET", path: "/api/v2/changes", status: resp.StatusCode, header: resp.Header, body: body}
	if serr := s.checkSchema(rr); serr != nil {
		s.mismatches.add(serr)
	}
	if resp.StatusCode != 200 {
		return pg, fmt.Errorf("%s: want status 200", rr)
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return pg, fmt.Errorf("%s: %v", rr, err)
	}
	if err := json.Unmarshal(env.Data, &pg); err != nil || pg.Items == nil {
		return pg, fmt.Errorf("%s: not a page (%v)", rr, err)
	}
	if h := resp.Header.Get("X-Auth-Revision"); h != strconv.FormatInt(pg.Revision, 10) {
		return pg, fmt.Errorf("%s: header X-Auth-Revision %q, data.revision %d", rr, h, pg.Revision)
	}
	return pg, nil
}

// nearestRank is the q-quantile of d by nearest rank (q 1: the largest).
func nearestRank(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
