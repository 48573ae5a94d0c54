package benchsuite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ourway/auth/cmd/internal/dataset"
	"github.com/ourway/auth/internal/benchreport"
	"github.com/ourway/auth/internal/loadtest"
)

// httpShape is the tenant of the HTTP probes.
var httpShape = dataset.Shape{Users: 1000, Roles: 100, Permissions: 200, Grants: 1000, Memberships: 2000}

// batchSize is the number of pairs of a batch check.
const batchSize = 100

// probe runs a warm-up, a closed loop at the highest throughput, then open
// loops at 50 % and 85 % of it.
func (s *suite) probe(ctx context.Context, what string, reqs []loadtest.Request, check loadtest.Check) (benchreport.Probe, error) {
	var p benchreport.Probe
	closed := loadtest.Phase{Requests: reqs, Check: check, Connections: s.t.connections}
	warm := closed
	warm.Duration = s.t.warmup
	if _, err := loadtest.Run(ctx, warm); err != nil {
		return p, err
	}
	closed.Duration = s.t.max
	var err error
	if p.Max, err = loadtest.Run(ctx, closed); err != nil {
		return p, err
	}
	s.log.Info("max", "what", what, "req/s", int(p.Max.Throughput), "p99", p.Max.Latency.P99, "errors", p.Max.Errors, "samples", p.Max.ErrorSamples)
	if p.Max.Throughput < 1 {
		return p, fmt.Errorf("%s: no correct answer at all (%d errors: %v)", what, p.Max.Errors, p.Max.ErrorSamples)
	}
	for _, x := range []struct {
		share float64
		res   *loadtest.Result
	}{{0.5, &p.Half}, {0.85, &p.High}} {
		open := loadtest.Phase{Requests: reqs, Check: check, Duration: s.t.open, Rate: x.share * p.Max.Throughput}
		if *x.res, err = loadtest.Run(ctx, open); err != nil {
			return p, err
		}
		s.log.Info("open loop", "what", what, "rate", int(open.Rate), "p50", x.res.Latency.P50, "p99", x.res.Latency.P99, "errors", x.res.Errors, "samples", x.res.ErrorSamples)
	}
	return p, nil
}

// runCeiling measures the bare net/http server.
func (s *suite) runCeiling(ctx context.Context) error {
	p, err := startProcess(ctx, "ceiling", s.cfg.Self, s.cfg.CeilingArgs, baseEnv(), filepath.Join(s.tmp, "ceiling.log"))
	if err != nil {
		return err
	}
	reqs := []loadtest.Request{{Method: http.MethodGet, URL: p.base + "/api/has_permission/user-1/perm-1"}}
	check := func(_ loadtest.Request, _ int, body []byte) error {
		var v struct{ Result *bool }
		if err := json.Unmarshal(body, &v); err != nil || v.Result == nil || !*v.Result {
			return fmt.Errorf("answer %q is not {\"result\":true}", body)
		}
		return nil
	}
	probe, err := s.probe(ctx, "ceiling", reqs, check)
	if serr := p.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	s.rep.Ceiling = &probe
	return nil
}

// runHTTP probes the routes of servers on SQLite and PostgreSQL with the
// decision audit on and off, and the writes of the servers with it on.
func (s *suite) runHTTP(ctx context.Context) error {
	tenant, err := dataset.Generate(httpShape, 1)
	if err != nil {
		return err
	}
	s.rep.Method = benchreport.Method{
		Connections: s.t.connections, Warmup: s.t.warmup, MaxPhase: s.t.max, OpenPhase: s.t.open,
		Tenant: fmt.Sprintf("one tenant of %s users, %s roles, %s permissions, %s grants (%d per role) and %s memberships (%d per user)",
			benchreport.Count(httpShape.Users), benchreport.Count(httpShape.Roles), benchreport.Count(httpShape.Permissions),
			benchreport.Count(httpShape.Grants), httpShape.Grants/httpShape.Roles,
			benchreport.Count(httpShape.Memberships), httpShape.Memberships/httpShape.Users),
		BatchSize: batchSize,
		ServerEnv: commonEnv(),
		Command:   s.command(SectionHTTP),
	}
	dbs := []string{benchreport.SQLite}
	if s.pg {
		dbs = append(dbs, benchreport.Postgres)
	}
	audits := []string{"all"}
	if s.want(SectionHTTP) {
		audits = append(audits, "none")
	}
	for _, kind := range dbs {
		for _, audit := range audits {
			if err := s.httpServer(ctx, tenant, kind, audit); err != nil {
				return fmt.Errorf("%s, audit %s: %w", kind, audit, err)
			}
		}
	}
	return nil
}

// httpServer runs the probes of one server.
func (s *suite) httpServer(ctx context.Context, tenant *dataset.Tenant, kind, audit string) (err error) {
	name := strings.ToLower(kind) + "-" + audit
	d, err := s.newDatabase(ctx, kind, name, tenant)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := d.cleanup(); err == nil {
			err = cerr
		}
	}()
	srv, err := s.startServer(ctx, name, d, audit)
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.stop(); err == nil {
			err = serr
		}
	}()
	truth := tenant.Truth()
	auth := http.Header{"Authorization": {"Bearer " + tenant.Key}}
	rng := rand.New(rand.NewPCG(2, 3))
	if s.want(SectionHTTP) {
		routes := []struct {
			route string
			per   int
			reqs  []loadtest.Request
			check loadtest.Check
		}{
			{benchreport.RouteSingle, 1, singleRequests(srv.base, auth, tenant, rng), singleCheck(truth)},
			{benchreport.RouteBatch, batchSize, batchRequests(srv.base, auth, tenant, rng), batchCheck(truth)},
			{benchreport.RouteUserPermissions, 1, userPermissionRequests(srv.base, auth, tenant, rng), userPermissionsCheck(truth)},
		}
		for _, r := range routes {
			what := fmt.Sprintf("%s audit %s %s", kind, audit, r.route)
			p, err := s.probe(ctx, what, r.reqs, r.check)
			if err != nil {
				return err
			}
			s.rep.HTTP = append(s.rep.HTTP, benchreport.HTTPProbe{Database: kind, Audit: audit, Route: r.route, PerRequest: r.per, Probe: p})
		}
	}
	if s.want(SectionWrites) && audit == "all" {
		w, err := s.writes(ctx, kind, srv.base, auth)
		if err != nil {
			return err
		}
		s.rep.Writes = append(s.rep.Writes, w)
	}
	return nil
}

// checkData is the data of a v1 check's answer.
type checkData struct {
	Data struct {
		HasPermission *bool `json:"has_permission"`
	} `json:"data"`
}

// singleRequests are GET /api/has_permission of random pairs.
func singleRequests(base string, auth http.Header, t *dataset.Tenant, rng *rand.Rand) []loadtest.Request {
	pairs, _ := t.Pairs(rng, 4096)
	reqs := make([]loadtest.Request, len(pairs))
	for i, p := range pairs {
		reqs[i] = loadtest.Request{Method: http.MethodGet, Header: auth,
			URL: base + "/api/has_permission/" + url.PathEscape(p.User) + "/" + url.PathEscape(p.Permission)}
	}
	return reqs
}

func singleCheck(truth *dataset.Truth) loadtest.Check {
	return func(req loadtest.Request, _ int, body []byte) error {
		_, rest, _ := strings.Cut(req.URL, "/api/has_permission/")
		user, perm, _ := strings.Cut(rest, "/")
		want, ok := truth.Allowed(user, perm)
		if !ok {
			return fmt.Errorf("no such pair %s/%s", user, perm)
		}
		var v checkData
		if err := json.Unmarshal(body, &v); err != nil || v.Data.HasPermission == nil {
			return fmt.Errorf("answer %.200q has no data.has_permission", body)
		}
		if *v.Data.HasPermission != want {
			return fmt.Errorf("has_permission %v, want %v", *v.Data.HasPermission, want)
		}
		return nil
	}
}

// batchRequests are POST /api/v2/check of batchSize random pairs each.
func batchRequests(base string, auth http.Header, t *dataset.Tenant, rng *rand.Rand) []loadtest.Request {
	h := auth.Clone()
	h.Set("Content-Type", "application/json")
	reqs := make([]loadtest.Request, 64)
	for i := range reqs {
		pairs, _ := t.Pairs(rng, batchSize)
		body, _ := json.Marshal(map[string]any{"checks": pairs})
		reqs[i] = loadtest.Request{Method: http.MethodPost, URL: base + "/api/v2/check", Header: h, Body: body}
	}
	return reqs
}

func batchCheck(truth *dataset.Truth) loadtest.Check {
	return func(_ loadtest.Request, _ int, body []byte) error {
		var v struct {
			Data struct {
				Results []struct {
					User       string `json:"user"`
					Permission string `json:"permission"`
					Allowed    *bool  `json:"allowed"`
				} `json:"results"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("answer %.200q: %v", body, err)
		}
		if len(v.Data.Results) != batchSize {
			return fmt.Errorf("%d results, want %d", len(v.Data.Results), batchSize)
		}
		for _, r := range v.Data.Results {
			want, ok := truth.Allowed(r.User, r.Permission)
			if !ok || r.Allowed == nil || *r.Allowed != want {
				return fmt.Errorf("result %s/%s: allowed %v, want %v", r.User, r.Permission, r.Allowed, want)
			}
		}
		return nil
	}
}

// userPermissionRequests are GET /api/user_permissions of every user, in
// random order.
func userPermissionRequests(base string, auth http.Header, t *dataset.Tenant, rng *rand.Rand) []loadtest.Request {
	reqs := make([]loadtest.Request, t.Shape.Users)
	for i, u := range rng.Perm(t.Shape.Users) {
		reqs[i] = loadtest.Request{Method: http.MethodGet, Header: auth, URL: base + "/api/user_permissions/" + url.PathEscape(dataset.User(u))}
	}
	return reqs
}

func userPermissionsCheck(truth *dataset.Truth) loadtest.Check {
	return func(req loadtest.Request, _ int, body []byte) error {
		user := req.URL[strings.LastIndexByte(req.URL, '/')+1:]
		want, ok := truth.UserPermissions(user)
		if !ok {
			return fmt.Errorf("no such user %s", user)
		}
		var v struct {
			Data struct {
				Count       int `json:"count"`
				Permissions []struct {
					Name string `json:"name"`
				} `json:"permissions"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("answer %.200q: %v", body, err)
		}
		got := make([]string, 0, len(v.Data.Permissions))
		for _, p := range v.Data.Permissions {
			got = append(got, p.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) || v.Data.Count != len(want) {
			return fmt.Errorf("%d permissions (count %d), want %d", len(got), v.Data.Count, len(want))
		}
		return nil
	}
}

// writeCycle is the number of grants written before they are revoked in
// the same order: far more than the requests in flight, so that a revoke
// never overtakes its grant.
const writeCycle = 4096

// writes runs grant/revoke pairs: a warm-up, a closed loop, then an open
// loop at 50 % of its throughput. Each phase carries on the cycle where
// the last stopped, so every write changes something.
func (s *suite) writes(ctx context.Context, kind, base string, auth http.Header) (benchreport.WriteProbe, error) {
	w := benchreport.WriteProbe{Database: kind}
	reqs := make([]loadtest.Request, 0, 2*writeCycle)
	for _, method := range []string{http.MethodPost, http.MethodDelete} {
		for i := range writeCycle {
			reqs = append(reqs, loadtest.Request{Method: method, Header: auth,
				URL: fmt.Sprintf("%s/api/permission/%s/write-%d", base, dataset.Role(0), i)})
		}
	}
	check := func(_ loadtest.Request, _ int, body []byte) error {
		var v struct{ Result *bool }
		if err := json.Unmarshal(body, &v); err != nil || v.Result == nil || !*v.Result {
			return fmt.Errorf("answer %.200q is not {\"result\":true}", body)
		}
		return nil
	}
	sent := 0
	run := func(p loadtest.Phase) (loadtest.Result, error) {
		k := sent % len(reqs)
		p.Requests = append(slices.Clone(reqs[k:]), reqs[:k]...)
		p.Check = check
		res, err := loadtest.Run(ctx, p)
		sent += res.Requests
		return res, err
	}
	if _, err := run(loadtest.Phase{Duration: s.t.warmup, Connections: s.t.connections}); err != nil {
		return w, err
	}
	var err error
	if w.Max, err = run(loadtest.Phase{Duration: s.t.max, Connections: s.t.connections}); err != nil {
		return w, err
	}
	s.log.Info("writes max", "db", kind, "writes/s", int(w.Max.Throughput), "p99", w.Max.Latency.P99, "errors", w.Max.Errors, "samples", w.Max.ErrorSamples)
	if w.Max.Throughput < 1 {
		return w, errors.New("writes: no correct answer at all: " + strings.Join(w.Max.ErrorSamples, "; "))
	}
	if w.Half, err = run(loadtest.Phase{Duration: s.t.open, Rate: w.Max.Throughput / 2}); err != nil {
		return w, err
	}
	s.log.Info("writes open loop", "db", kind, "rate", int(w.Half.Rate), "p99", w.Half.Latency.P99, "errors", w.Half.Errors, "samples", w.Half.ErrorSamples)
	return w, nil
}
