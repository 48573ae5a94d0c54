package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// answer is the API's answer to a request the console made: its status,
// its envelope, and the revision a change reached.
type answer struct {
	Status   int
	Message  string
	Data     json.RawMessage
	Reason   string
	Revision int64
}

// OK reports whether the request succeeded.
func (a answer) OK() bool { return a.Status < 300 }

// apiError is an answer of the API that is not a success, as an error.
type apiError struct{ answer }

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Reason, e.Message) }

// call makes a request to the API on behalf of the session: the session's
// token as the bearer credential, the visitor's address, user agent,
// forwarding headers and request id, so that the API authenticates, limits
// and records it as the visitor's own request. body, when not nil, is sent
// as JSON. A refused request is an *apiError.
func (c *Console) call(r *http.Request, s *session, method, p string, q url.Values, body any) (answer, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(b)
	}
	target := p
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), method, target, rd)
	if err != nil {
		return answer{}, err
	}
	req.RemoteAddr = r.RemoteAddr
	req.Host = r.Host
	req.TLS = r.TLS
	for _, h := range []string{"User-Agent", "X-Forwarded-For", "X-Real-Ip"} {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if f, ok := audit.RequestFrom(r.Context()); ok {
		// One request id for the page and the API request it made.
		req.Header.Set("X-Request-ID", f.ID)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := newRecorder()
	c.deps.API.ServeHTTP(rec, req)
	a := answer{Status: rec.status}
	if v := rec.h.Get("X-Auth-Revision"); v != "" {
		a.Revision, _ = strconv.ParseInt(v, 10, 64)
	}
	var env struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
		Details struct {
			Reason string `json:"reason"`
		} `json:"details"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &env); err == nil {
		a.Message, a.Data, a.Reason = env.Message, env.Data, env.Details.Reason
	}
	if !a.OK() {
		if a.Message == "" {
			a.Message = http.StatusText(a.Status)
		}
		return a, &apiError{a}
	}
	return a, nil
}

// recorder is the response of an in-process API request.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{h: http.Header{}, status: http.StatusOK} }

func (w *recorder) Header() http.Header         { return w.h }
func (w *recorder) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *recorder) WriteHeader(code int)        { w.status = code }

// consistent returns ctx with the session's demand on the state it reads:
// at least the revision its own changes reached, on whichever replica.
func consistent(ctx context.Context, s *session) context.Context {
	if s.need <= 0 {
		return ctx
	}
	return policy.WithReceipt(ctx, &policy.Receipt{Need: policy.Consistency{Mode: policy.AtLeast, Revision: s.need}})
}
