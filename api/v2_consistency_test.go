package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/policy"
)

// want400 checks that err is a v2 400 with reason and details.
func wantV2Error(t *testing.T, what string, err error, code int, reason string, details map[string]any) {
	t.Helper()
	var ve *v2Error
	if !errors.As(err, &ve) || ve.code != code || ve.reason != reason || !reflect.DeepEqual(ve.details, details) {
		t.Errorf("%s: %v; want %d %s %v", what, err, code, reason, details)
	}
}

func TestConsistencyParameter(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  policy.Consistency
		bad   bool
	}{
		{"", policy.Consistency{}, false},
		{"consistency=", policy.Consistency{}, false},
		{"consistency=minimize_latency", policy.Consistency{}, false},
		{"consistency=full", policy.Consistency{Mode: policy.Full}, false},
		{"consistency=at_least:0", policy.Consistency{Mode: policy.AtLeast}, false},
		{"consistency=at_least:12", policy.Consistency{Mode: policy.AtLeast, Revision: 12}, false},
		{"consistency=at_least%3A12", policy.Consistency{Mode: policy.AtLeast, Revision: 12}, false},
		{"consistency=at_least:-1", policy.Consistency{}, true},
		{"consistency=at_least:", policy.Consistency{}, true},
		{"consistency=at_least:x", policy.Consistency{}, true},
		{"consistency=at_least:012", policy.Consistency{}, true},
		{"consistency=at_least:99999999999999999999", policy.Consistency{}, true},
		{"consistency=strong", policy.Consistency{}, true},
		{"consistency=FULL", policy.Consistency{}, true},
		{"consistency=full%20", policy.Consistency{}, true},
	} {
		c := echo.New().NewContext(httptest.NewRequest("GET", "/api/v2/check?"+tc.query, nil), httptest.NewRecorder())
		ctx, rc, err := consistent(c)
		if tc.bad {
			wantV2Error(t, tc.query, err, http.StatusBadRequest, ReasonInvalidParameter, map[string]any{"parameter": "consistency"})
			continue
		}
		if err != nil || rc == nil || rc.Need != tc.want || policy.ReceiptFrom(ctx) != rc {
			t.Errorf("consistent(%q) = %+v, %v; want a receipt needing %+v in the context", tc.query, rc, err, tc.want)
		}
	}
}

func TestChangeCursor(t *testing.T) {
	for _, p := range []policy.Position{
		policy.After(0), policy.After(7), {Revision: 0, Seq: 0}, {Revision: 3, Seq: 0}, {Revision: 3, Seq: 41},
		{Revision: math.MaxInt64, Seq: math.MaxInt}, policy.After(math.MaxInt64),
	} {
		c := encodeChangeCursor(p)
		if strings.ContainsAny(c, "+/=&?# ") {
			t.Errorf("cursor of %+v = %q: not safe in a query without escaping", p, c)
		}
		if got, ok := decodeChangeCursor(c); !ok || got != p {
			t.Errorf("decode(encode(%+v)) = %+v, %v", p, got, ok)
		}
	}
	// Cursors of the role lists are not cursors of the feed.
	raw := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []string{
		"", "!!!!", "c1:5.0", raw(""), raw("c1:"), raw("c1:5"), raw("c1:5."), raw("c1:.0"), raw("c1:-1.0"),
		raw("c1:5.-2"), raw("c1:5.x"), raw("c1:x.0"), raw("c2:5.0"), raw("5.0"), raw("c1:5.0.1"),
		raw("c1:99999999999999999999.0"), raw("c1: 5.0"), encodeCursor("bob"),
		base64.URLEncoding.EncodeToString([]byte("c1:5.10")), // padded
		base64.StdEncoding.EncodeToString([]byte("c1:5.0>>")),
	} {
		if p, ok := decodeChangeCursor(c); ok {
			t.Errorf("decodeChangeCursor(%q) = %+v; want a refusal", c, p)
		}
	}
}

// FuzzChangeCursor: decoding never panics, and what decodes is a position
// a cursor encodes again (to the same position).
func FuzzChangeCursor(f *testing.F) {
	for _, p := range []policy.Position{policy.After(0), {Revision: 3, Seq: 1}, {Revision: math.MaxInt64, Seq: math.MaxInt}} {
		f.Add(encodeChangeCursor(p))
	}
	for _, s := range []string{"", "c1:5.0", "YzE6NS4w", "YzE6LTEuMA", "YzE6NS4tMg", "Ym9i"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := decodeChangeCursor(s)
		if !ok {
			return
		}
		if p.Revision < 0 || p.Seq < -1 {
			t.Fatalf("decodeChangeCursor(%q) = %+v: not a position", s, p)
		}
		again, ok := decodeChangeCursor(encodeChangeCursor(p))
		if !ok || again != p {
			t.Fatalf("decodeChangeCursor(%q) = %+v, which re-encodes to %+v, %v", s, p, again, ok)
		}
	})
}

func bodyContext(method, body string) echo.Context {
	req := httptest.NewRequest(method, "/api/v2/roles/admin/members/alice", strings.NewReader(body))
	req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	return echo.New().NewContext(req, httptest.NewRecorder())
}

func TestReadExpiry(t *testing.T) {
	at := time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, body string
		want       *time.Time
		field      string // "": accepted; "-": refused with no field
	}{
		{"no body", "", nil, ""},
		{"blank body", " \n\t", nil, ""},
		{"empty object", "{}", nil, ""},
		{"expires_at", `{"expires_at": "2030-01-02T15:04:05Z"}`, &at, ""},
		{"expires_at with an offset", `{"expires_at": "2030-01-02T17:04:05+02:00"}`, &at, ""},
		{"expires_at with a fraction", `{"expires_at": "2030-01-02T15:04:05.000000Z"}`, &at, ""},
		{"a past expires_at is the core's to refuse", `{"expires_at": "2001-01-01T00:00:00Z"}`,
			func() *time.Time { t := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC); return &t }(), ""},
		{"both", `{"expires_at": "2030-01-02T15:04:05Z", "ttl": "1h"}`, nil, "ttl"},
		{"unknown field", `{"until": "2030-01-02T15:04:05Z"}`, nil, "until"},
		{"unknown field with ttl", `{"ttl": "1h", "zone": "UTC"}`, nil, "zone"},
		{"expires_at a number", `{"expires_at": 1893596645}`, nil, "expires_at"},
		{"expires_at null", `{"expires_at": null}`, nil, "expires_at"},
		{"expires_at an object", `{"expires_at": {}}`, nil, "expires_at"},
		{"expires_at a date", `{"expires_at": "2030-01-02"}`, nil, "expires_at"},
		{"expires_at without a zone", `{"expires_at": "2030-01-02T15:04:05"}`, nil, "expires_at"},
		{"expires_at in words", `{"expires_at": "tomorrow"}`, nil, "expires_at"},
		{"expires_at empty", `{"expires_at": ""}`, nil, "expires_at"},
		{"ttl a number", `{"ttl": 3600}`, nil, "ttl"},
		{"ttl a boolean", `{"ttl": true}`, nil, "ttl"},
		{"ttl zero", `{"ttl": "0s"}`, nil, "ttl"},
		{"ttl negative", `{"ttl": "-5m"}`, nil, "ttl"},
		{"ttl without a unit", `{"ttl": "5"}`, nil, "ttl"},
		{"ttl in days", `{"ttl": "2d"}`, nil, "ttl"},
		{"ttl empty", `{"ttl": ""}`, nil, "ttl"},
		{"an array", `[]`, nil, "-"},
		{"null", `null`, nil, "-"},
		{"a string", `"1h"`, nil, "-"},
		{"not JSON", `{ttl: 1h}`, nil, "-"},
	} {
		got, err := readExpiry(bodyContext(http.MethodPut, tc.body))
		switch tc.field {
		case "":
			if err != nil || (got == nil) != (tc.want == nil) || got != nil && !got.Equal(*tc.want) {
				t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
			}
		case "-":
			wantV2Error(t, tc.name, err, http.StatusBadRequest, ReasonInvalidBody, nil)
		default:
			wantV2Error(t, tc.name, err, http.StatusBadRequest, ReasonInvalidBody, map[string]any{"field": tc.field})
		}
	}
	// A ttl counts from the request.
	for _, d := range []time.Duration{2 * time.Second, 90 * time.Minute, 36 * time.Hour} {
		before := time.Now()
		got, err := readExpiry(bodyContext(http.MethodPut, `{"ttl": "`+d.String()+`"}`))
		after := time.Now()
		if err != nil || got == nil || got.Before(before.Add(d)) || got.After(after.Add(d)) {
			t.Errorf("ttl %s: %v, %v; want %s after the request", d, got, err, d)
		}
	}
}

func TestV2StatusOfConsistencyErrors(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("read tenant: %w", err) }
	for _, tc := range []struct {
		name    string
		err     error
		code    int
		reason  string
		details map[string]any
		says    []string
	}{
		{"revision ahead", &policy.RevisionAheadError{Revision: 9, Latest: 4}, 400, ReasonRevisionAhead,
			map[string]any{"revision": int64(9), "latest": int64(4)}, []string{"9", "4"}},
		{"revision ahead, wrapped", wrap(&policy.RevisionAheadError{Revision: 1}), 400, ReasonRevisionAhead,
			map[string]any{"revision": int64(1), "latest": int64(0)}, nil},
		{"consistency unavailable", policy.ErrConsistencyUnavailable, 503, ReasonConsistencyUnavailable, nil,
			[]string{"retrying is safe"}},
		{"consistency unavailable with its cause",
			fmt.Errorf("%w: %w", policy.ErrConsistencyUnavailable, context.DeadlineExceeded), 503,
			ReasonConsistencyUnavailable, nil, nil},
		{"unavailable is not consistency_unavailable", policy.ErrUnavailable, 503, ReasonUnavailable, nil, nil},
		{"changes expired", &policy.ChangesExpiredError{Oldest: 17}, 410, ReasonChangesExpired,
			map[string]any{"oldest": int64(17)}, []string{"17", "/api/v2/policy/export", "since="}},
		{"changes expired, wrapped", wrap(&policy.ChangesExpiredError{Oldest: 2}), 410, ReasonChangesExpired,
			map[string]any{"oldest": int64(2)}, nil},
		{"expiry", &policy.ExpiryError{Reason: "is not in the future"}, 400, ReasonInvalidBody,
			map[string]any{"field": "expires_at"}, []string{"is not in the future"}},
		{"expiry unsupported", policy.ErrExpiryUnsupported, 400, ReasonExpiryUnsupported, nil, []string{"model"}},
		{"expiry unsupported, wrapped", wrap(policy.ErrExpiryUnsupported), 400, ReasonExpiryUnsupported, nil, nil},
	} {
		code, msg, reason, details := v2StatusOf(tc.err)
		if code != tc.code || reason != tc.reason || !reflect.DeepEqual(details, tc.details) {
			t.Errorf("%s: %d %s %v; want %d %s %v", tc.name, code, reason, details, tc.code, tc.reason, tc.details)
		}
		for _, s := range tc.says {
			if !strings.Contains(msg, s) {
				t.Errorf("%s: message %q does not say %q", tc.name, msg, s)
			}
		}
	}
	// The answer on the wire: 503 consistency_unavailable says when to retry.
	s := &Server{log: slog.New(slog.DiscardHandler)}
	c := echo.New().NewContext(httptest.NewRequest("GET", "/api/v2/check?consistency=full", nil), httptest.NewRecorder())
	s.handleError(policy.ErrConsistencyUnavailable, c)
	rec := c.Response().Writer.(*httptest.ResponseRecorder)
	var body struct {
		Code    int            `json:"code"`
		Details map[string]any `json:"details"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 503 || body.Code != 503 ||
		body.Details["reason"] != ReasonConsistencyUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("answer: %d %s Retry-After %q, %v", rec.Code, rec.Body, rec.Header().Get("Retry-After"), err)
	}
}

// feedCore answers the change feed with a fixed page and keeps what it
// was asked; the rest of the core is absent.
type feedCore struct {
	Authorizer
	page  policy.ChangePage
	from  policy.Position
	limit int
	wait  time.Duration
	calls int
}

func (f *feedCore) Changes(_ context.Context, _ policy.KeyHash, from policy.Position, limit int, wait time.Duration) (policy.ChangePage, error) {
	f.calls++
	f.from, f.limit, f.wait = from, limit, wait
	return f.page, nil
}

func TestChangesHandler(t *testing.T) {
	desc := "Admins"
	end := time.Date(2031, 1, 2, 3, 4, 5, 600000000, time.FixedZone("X", 3600))
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	page := policy.ChangePage{Items: []policy.ChangeRecord{
		{Revision: 4, Seq: 0, Op: policy.ChangeSetDescription, Role: "admin", Description: &desc, At: at},
		{Revision: 4, Seq: 1, Op: policy.ChangeSetDescription, Role: "admin", At: at},
		{Revision: 5, Seq: 0, Op: policy.ChangeAddMember, Role: "admin", User: "alice", ExpiresAt: &end, At: at},
		{Revision: 6, Seq: 0, Op: policy.ChangeExpire, Role: "admin", Permission: "read", At: at},
	}, Next: &policy.Position{Revision: 6, Seq: 0}, Revision: 6}
	for _, tc := range []struct {
		query string
		from  policy.Position
		limit int
		wait  time.Duration
		param string // refused for this parameter
	}{
		{"", policy.After(0), DefaultPageLimit, 0, ""},
		{"since=0", policy.After(0), DefaultPageLimit, 0, ""},
		{"since=12&limit=1&wait=30s", policy.After(12), 1, 30 * time.Second, ""},
		{"limit=1000&wait=60s", policy.After(0), 1000, time.Minute, ""},
		{"wait=0s", policy.After(0), DefaultPageLimit, 0, ""},
		{"since=3&cursor=" + encodeChangeCursor(policy.Position{Revision: 5, Seq: 2}), policy.Position{Revision: 5, Seq: 2},
			DefaultPageLimit, 0, ""},
		{"since=-1", policy.Position{}, 0, 0, "since"},
		{"since=x", policy.Position{}, 0, 0, "since"},
		{"since=1.5", policy.Position{}, 0, 0, "since"},
		{"limit=0", policy.Position{}, 0, 0, "limit"},
		{"limit=1001", policy.Position{}, 0, 0, "limit"},
		{"limit=ten", policy.Position{}, 0, 0, "limit"},
		{"cursor=abc", policy.Position{}, 0, 0, "cursor"},
		{"cursor=" + encodeCursor("bob"), policy.Position{}, 0, 0, "cursor"},
		{"wait=61s", policy.Position{}, 0, 0, "wait"},
		{"wait=-1s", policy.Position{}, 0, 0, "wait"},
		{"wait=30", policy.Position{}, 0, 0, "wait"},
		{"wait=soon", policy.Position{}, 0, 0, "wait"},
	} {
		core := &feedCore{page: page}
		s := &Server{deps: Deps{Policy: core}}
		c := echo.New().NewContext(httptest.NewRequest("GET", "/api/v2/changes?"+tc.query, nil), httptest.NewRecorder())
		err := s.v2Changes(c)
		if tc.param != "" {
			wantV2Error(t, tc.query, err, 400, ReasonInvalidParameter, map[string]any{"parameter": tc.param})
			if core.calls != 0 {
				t.Errorf("%s: the feed was read", tc.query)
			}
			continue
		}
		if err != nil || core.from != tc.from || core.limit != tc.limit || core.wait != tc.wait {
			t.Errorf("%s: asked %+v limit %d wait %s, %v; want %+v limit %d wait %s", tc.query, core.from,
				core.limit, core.wait, err, tc.from, tc.limit, tc.wait)
			continue
		}
		rec := c.Response().Writer.(*httptest.ResponseRecorder)
		if rec.Header().Get(HeaderRevision) != "6" {
			t.Errorf("%s: %s %q", tc.query, HeaderRevision, rec.Header().Get(HeaderRevision))
		}
		var body struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		want := `{"items":[` +
			`{"at":"2031-01-01T00:00:00.000000Z","description":"Admins","op":"set_description","revision":4,"role":"admin"},` +
			`{"at":"2031-01-01T00:00:00.000000Z","description":null,"op":"set_description","revision":4,"role":"admin"},` +
			`{"at":"2031-01-01T00:00:00.000000Z","expires_at":"2031-01-02T02:04:05.600000Z","op":"add_member","revision":5,"role":"admin","user":"alice"},` +
			`{"at":"2031-01-01T00:00:00.000000Z","op":"expire","permission":"read","revision":6,"role":"admin"}],` +
			`"next_cursor":"` + encodeChangeCursor(*page.Next) + `","revision":6}`
		if string(body.Data) != want {
			t.Errorf("%s: data\n%s\nwant\n%s", tc.query, body.Data, want)
		}
	}
	// The end of the feed: no items, no cursor.
	core := &feedCore{page: policy.ChangePage{Items: []policy.ChangeRecord{}, Revision: 9}}
	s := &Server{deps: Deps{Policy: core}}
	c := echo.New().NewContext(httptest.NewRequest("GET", "/api/v2/changes?since=9", nil), httptest.NewRecorder())
	if err := s.v2Changes(c); err != nil {
		t.Fatal(err)
	}
	rec := c.Response().Writer.(*httptest.ResponseRecorder)
	if !strings.Contains(rec.Body.String(), `"data":{"items":[],"next_cursor":null,"revision":9}`) {
		t.Errorf("empty page: %s", rec.Body)
	}
}

// slowFeed is a change feed whose long poll answers after hold, the time
// a real one waits for a change.
type slowFeed struct {
	Authorizer
	hold time.Duration
}

func (f slowFeed) Changes(ctx context.Context, _ policy.KeyHash, from policy.Position, _ int, _ time.Duration) (policy.ChangePage, error) {
	t := time.NewTimer(f.hold)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return policy.ChangePage{Items: []policy.ChangeRecord{}, Revision: from.Revision}, nil
}

// TestChangesLongPollOutlivesWriteTimeout: a long poll answers after its
// wait even when that is longer than the listener's write timeout.
func TestChangesLongPollOutlivesWriteTimeout(t *testing.T) {
	s := &Server{deps: Deps{Policy: slowFeed{hold: 500 * time.Millisecond}}}
	e := echo.New()
	e.GET("/api/v2/changes", s.v2Changes)
	srv := httptest.NewUnstartedServer(e)
	srv.Config.WriteTimeout = 50 * time.Millisecond
	srv.Start()
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + "/api/v2/changes?since=3&wait=10s")
	if err != nil {
		t.Fatalf("long poll past the write timeout: %v", err)
	}
	defer res.Body.Close()
	var body struct {
		Data v2ChangePage `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != 200 || body.Data.Revision != 3 {
		t.Errorf("long poll past the write timeout: %d %+v, %v", res.StatusCode, body, err)
	}
}
