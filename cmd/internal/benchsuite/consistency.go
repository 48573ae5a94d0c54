package benchsuite

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ourway/auth/cmd/internal/dataset"
	"github.com/ourway/auth/internal/benchreport"
	"github.com/ourway/auth/internal/loadtest"
)

// consistencyAudit is the decision audit setting of the consistency
// section's server: none, so that only the consistency demand differs.
const consistencyAudit = "none"

// consistencyRounds is the number of closed-loop rounds of each mode.
const consistencyRounds = 4

// runConsistency measures GET /api/v2/check with consistency=
// minimize_latency and with at_least of the tenant's current revision on a
// SQLite server holding the HTTP section's tenant: a warm-up of both, then
// closed loops of each in alternating rounds (half the HTTP section's max
// phase each), then open loops at half the minimize_latency max in two
// alternating rounds; each mode's rounds are summed up as one.
func (s *suite) runConsistency(ctx context.Context) (err error) {
	tenant, err := dataset.Generate(httpShape, 1)
	if err != nil {
		return err
	}
	d, err := s.newDatabase(ctx, benchreport.SQLite, "consistency", tenant)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := d.cleanup(); err == nil {
			err = cerr
		}
	}()
	srv, err := s.startServer(ctx, "consistency", d, consistencyAudit)
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.stop(); err == nil {
			err = serr
		}
	}()
	auth := http.Header{"Authorization": {"Bearer " + tenant.Key}}
	rev, err := currentRevision(ctx, srv.base, auth)
	if err != nil {
		return err
	}
	pairs, want := tenant.Pairs(rand.New(rand.NewPCG(4, 5)), 4096)
	ml, mlCheck := consistencyRequests(srv.base, auth, pairs, want, "minimize_latency", rev)
	al, alCheck := consistencyRequests(srv.base, auth, pairs, want, "at_least:"+strconv.FormatInt(rev, 10), rev)

	c := &benchreport.ConsistencyProbe{Database: benchreport.SQLite, Audit: consistencyAudit, Revision: rev,
		Command: s.command(SectionConsistency)}
	// The warm-up alternates the two modes.
	mixed := make([]loadtest.Request, 0, 2*len(ml))
	for i := range ml {
		mixed = append(mixed, ml[i], al[i])
	}
	both := func(req loadtest.Request, status int, body []byte) error {
		if strings.HasSuffix(req.URL, "=minimize_latency") {
			return mlCheck(req, status, body)
		}
		return alCheck(req, status, body)
	}
	if _, err := loadtest.Run(ctx, loadtest.Phase{Requests: mixed, Check: both, Duration: s.t.warmup, Connections: s.t.connections}); err != nil {
		return err
	}
	modes := [2]struct {
		name   string
		reqs   []loadtest.Request
		check  loadtest.Check
		closed []loadtest.Result
		open   []loadtest.Result
	}{{name: "minimize_latency", reqs: ml, check: mlCheck}, {name: "at_least", reqs: al, check: alCheck}}
	// rounds runs each mode n times, in the order AB BA AB BA…, so that
	// neither mode always runs first or last on a machine whose load drifts.
	rounds := func(n int, phase loadtest.Phase, keep func(mode int, res loadtest.Result)) error {
		for i := range n {
			for k := range 2 {
				m := k ^ (i % 2)
				phase.Requests, phase.Check = modes[m].reqs, modes[m].check
				res, err := loadtest.Run(ctx, phase)
				if err != nil {
					return err
				}
				keep(m, res)
			}
		}
		return nil
	}
	n := consistencyRounds
	if s.cfg.Quick {
		n = 2
	}
	c.Rounds = n
	err = rounds(n, loadtest.Phase{Duration: s.t.max / 2, Connections: s.t.connections}, func(m int, res loadtest.Result) {
		modes[m].closed = append(modes[m].closed, res)
	})
	if err != nil {
		return err
	}
	if c.MinimizeLatency.Max, err = loadtest.Merge(modes[0].closed...); err != nil {
		return err
	}
	if c.AtLeast.Max, err = loadtest.Merge(modes[1].closed...); err != nil {
		return err
	}
	for _, x := range []struct {
		name string
		res  loadtest.Result
	}{{"minimize_latency", c.MinimizeLatency.Max}, {"at_least", c.AtLeast.Max}} {
		s.log.Info("consistency max", "mode", x.name, "req/s", int(x.res.Throughput), "p99", x.res.Latency.P99, "errors", x.res.Errors, "samples", x.res.ErrorSamples)
		if x.res.Throughput < 1 {
			return fmt.Errorf("consistency %s: no correct answer at all (%d errors: %v)", x.name, x.res.Errors, x.res.ErrorSamples)
		}
	}
	rate := c.MinimizeLatency.Max.Throughput / 2
	err = rounds(2, loadtest.Phase{Duration: s.t.open / 2, Rate: rate}, func(m int, res loadtest.Result) {
		modes[m].open = append(modes[m].open, res)
	})
	if err != nil {
		return err
	}
	if c.MinimizeLatency.Open, err = loadtest.Merge(modes[0].open...); err != nil {
		return err
	}
	if c.AtLeast.Open, err = loadtest.Merge(modes[1].open...); err != nil {
		return err
	}
	for _, x := range []struct {
		name string
		res  loadtest.Result
	}{{"minimize_latency", c.MinimizeLatency.Open}, {"at_least", c.AtLeast.Open}} {
		s.log.Info("consistency open loop", "mode", x.name, "rate", int(rate), "p50", x.res.Latency.P50, "p99", x.res.Latency.P99, "errors", x.res.Errors, "samples", x.res.ErrorSamples)
	}
	s.rep.Consistency = c
	return nil
}

// v2Checked is the data of a GET /api/v2/check answer.
type v2Checked struct {
	Data struct {
		Allowed  *bool  `json:"allowed"`
		Revision *int64 `json:"revision"`
	} `json:"data"`
}

// currentRevision asks the server for a check of the tenant and returns the
// revision it was answered at.
func currentRevision(ctx context.Context, base string, auth http.Header) (int64, error) {
	u := base + "/api/v2/check?" + url.Values{"user": {dataset.User(0)}, "permission": {dataset.Permission(0)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header = auth.Clone()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var v v2Checked
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &v) != nil || v.Data.Revision == nil {
		return 0, fmt.Errorf("GET %s: %d %.200q: no data.revision", u, resp.StatusCode, body)
	}
	if h := resp.Header.Get("X-Auth-Revision"); h != strconv.FormatInt(*v.Data.Revision, 10) {
		return 0, fmt.Errorf("GET %s: X-Auth-Revision %q, data.revision %d", u, h, *v.Data.Revision)
	}
	if *v.Data.Revision <= 0 {
		return 0, fmt.Errorf("GET %s: the tenant is at revision %d", u, *v.Data.Revision)
	}
	return *v.Data.Revision, nil
}

// consistencyRequests are GET /api/v2/check of the pairs with the
// consistency parameter last in the query, and the check of their answers:
// the decision want[i], computed at revision rev (no write runs meanwhile).
func consistencyRequests(base string, auth http.Header, pairs []dataset.Pair, want []bool, consistency string, rev int64) ([]loadtest.Request, loadtest.Check) {
	reqs := make([]loadtest.Request, len(pairs))
	answers := make(map[string]bool, len(pairs))
	for i, p := range pairs {
		u := base + "/api/v2/check?" + url.Values{"user": {p.User}, "permission": {p.Permission}}.Encode() +
			"&consistency=" + url.QueryEscape(consistency)
		reqs[i] = loadtest.Request{Method: http.MethodGet, Header: auth, URL: u}
		answers[u] = want[i]
	}
	check := func(req loadtest.Request, _ int, body []byte) error {
		w, ok := answers[req.URL]
		if !ok {
			return fmt.Errorf("no answer known for %s", req.URL)
		}
		var v v2Checked
		if err := json.Unmarshal(body, &v); err != nil || v.Data.Allowed == nil || v.Data.Revision == nil {
			return fmt.Errorf("answer %.200q has no data.allowed or data.revision", body)
		}
		if *v.Data.Allowed != w {
			return fmt.Errorf("allowed %v, want %v", *v.Data.Allowed, w)
		}
		if *v.Data.Revision != rev {
			return fmt.Errorf("data.revision %d, want %d", *v.Data.Revision, rev)
		}
		return nil
	}
	return reqs, check
}
