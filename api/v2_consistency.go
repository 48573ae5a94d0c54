package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/policy"
)

// HeaderRevision names the header that states the tenant's revision a
// change committed (every v1 and v2 write) or a v2 read was answered at.
const HeaderRevision = "X-Auth-Revision"

// revisioned gives a request that may change a tenant's policy a receipt,
// and answers it with the revision its change committed.
func revisioned(c echo.Context) {
	r := c.Request()
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return
	}
	rc := &policy.Receipt{}
	c.SetRequest(r.WithContext(policy.WithReceipt(r.Context(), rc)))
	res := c.Response()
	res.Before(func() {
		if rc.Wrote {
			res.Header().Set(HeaderRevision, strconv.FormatInt(rc.Revision, 10))
		}
	})
}

// committed is the revision the request's change committed (0: none).
func committed(c echo.Context) int64 {
	if rc := policy.ReceiptFrom(c.Request().Context()); rc != nil {
		return rc.Revision
	}
	return 0
}

// consistent reads a v2 read's consistency parameter and returns the
// context that carries it to the core, with the receipt that gets the
// revision the answer is computed at.
func consistent(c echo.Context) (context.Context, *policy.Receipt, error) {
	need, err := policy.ParseConsistency(c.QueryParam("consistency"))
	if err != nil {
		return nil, nil, v2Fail(http.StatusBadRequest, ReasonInvalidParameter,
			"consistency must be minimize_latency, at_least:<revision> (a revision this service returned) or full.",
			map[string]any{"parameter": "consistency"})
	}
	rc := &policy.Receipt{Need: need}
	return policy.WithReceipt(c.Request().Context(), rc), rc, nil
}

// answeredAt states the revision a read was answered at.
func answeredAt(c echo.Context, rc *policy.Receipt) {
	c.Response().Header().Set(HeaderRevision, strconv.FormatInt(rc.Revision, 10))
}

// Wire shapes of the change feed (sorted keys).
type (
	v2Change struct {
		At          string  `json:"at"`
		Description *string `json:"description,omitempty"`
		ExpiresAt   *string `json:"expires_at,omitempty"`
		Op          string  `json:"op"`
		Parent      string  `json:"parent,omitempty"`
		Permission  string  `json:"permission,omitempty"`
		Revision    int64   `json:"revision"`
		Role        string  `json:"role,omitempty"`
		User        string  `json:"user,omitempty"`
	}
	// v2ChangeDesc is a set_description item, whose description is
	// always stated (null clears it).
	v2ChangeDesc struct {
		At          string  `json:"at"`
		Description *string `json:"description"`
		Op          string  `json:"op"`
		Revision    int64   `json:"revision"`
		Role        string  `json:"role"`
	}
	v2ChangePage struct {
		Items      []any   `json:"items"`
		NextCursor *string `json:"next_cursor"`
		Revision   int64   `json:"revision"`
	}
)

// MaxChangesLimit is the most items one page of the change feed holds.
const MaxChangesLimit = 1000

// changesWriteMargin is the time a long-polling change feed request has,
// after its wait, to read its page and write it.
const changesWriteMargin = 15 * time.Second

// changeCursorPrefix versions the change feed's cursor format.
const changeCursorPrefix = "c1:"

// v2Changes answers GET /api/v2/changes?since=&limit=&cursor=&wait=.
func (s *Server) v2Changes(c echo.Context) error {
	from := policy.After(0)
	if v := c.QueryParam("since"); v != "" && c.QueryParam("cursor") == "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return v2Fail(http.StatusBadRequest, ReasonInvalidParameter,
				"since must be a revision: a whole number from 0.", map[string]any{"parameter": "since"})
		}
		from = policy.After(n)
	}
	if v := c.QueryParam("cursor"); v != "" {
		p, ok := decodeChangeCursor(v)
		if !ok {
			return v2Fail(http.StatusBadRequest, ReasonInvalidParameter,
				"cursor is not one this service returned: pass next_cursor of the previous page unchanged.",
				map[string]any{"parameter": "cursor"})
		}
		from = p
	}
	limit := DefaultPageLimit
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxChangesLimit {
			return v2Fail(http.StatusBadRequest, ReasonInvalidParameter,
				"limit must be a whole number from 1 to "+strconv.Itoa(MaxChangesLimit)+".",
				map[string]any{"parameter": "limit"})
		}
		limit = n
	}
	var wait time.Duration
	if v := c.QueryParam("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > policy.MaxChangesWait {
			return v2Fail(http.StatusBadRequest, ReasonInvalidParameter,
				"wait must be a duration from 0s to "+policy.MaxChangesWait.String()+" (for example 30s).",
				map[string]any{"parameter": "wait"})
		}
		wait = d
	}
	if wait > 0 {
		// The listener's write timeout (server.write_timeout, 15s by
		// default) would cut a long poll before it answers: this response
		// may be written up to wait later than usual.
		_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(wait + changesWriteMargin))
	}
	page, err := s.deps.Policy.Changes(c.Request().Context(), tenantOf(c), from, limit, wait)
	if err != nil {
		return err
	}
	out := v2ChangePage{Items: make([]any, 0, len(page.Items)), Revision: page.Revision}
	for _, it := range page.Items {
		out.Items = append(out.Items, changeWire(it))
	}
	if page.Next != nil {
		cur := encodeChangeCursor(*page.Next)
		out.NextCursor = &cur
	}
	c.Response().Header().Set(HeaderRevision, strconv.FormatInt(page.Revision, 10))
	return v2JSON(c, http.StatusOK, fmt.Sprintf("%d changes", len(out.Items)), out)
}

func changeWire(it policy.ChangeRecord) any {
	at := timestamp(it.At)
	if it.Op == policy.ChangeSetDescription {
		return v2ChangeDesc{At: at, Description: it.Description, Op: it.Op, Revision: it.Revision, Role: it.Role}
	}
	w := v2Change{At: at, Op: it.Op, Parent: it.Parent, Permission: it.Permission, Revision: it.Revision,
		Role: it.Role, User: it.User}
	if it.ExpiresAt != nil {
		e := timestamp(*it.ExpiresAt)
		w.ExpiresAt = &e
	}
	return w
}

func encodeChangeCursor(p policy.Position) string {
	return base64.RawURLEncoding.EncodeToString([]byte(changeCursorPrefix +
		strconv.FormatInt(p.Revision, 10) + "." + strconv.Itoa(p.Seq)))
}

func decodeChangeCursor(v string) (policy.Position, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return policy.Position{}, false
	}
	rest, ok := strings.CutPrefix(string(raw), changeCursorPrefix)
	if !ok {
		return policy.Position{}, false
	}
	r, q, ok := strings.Cut(rest, ".")
	rev, err1 := strconv.ParseInt(r, 10, 64)
	seq, err2 := strconv.Atoi(q)
	if !ok || err1 != nil || err2 != nil || rev < 0 || seq < -1 {
		return policy.Position{}, false
	}
	return policy.Position{Revision: rev, Seq: seq}, true
}

// readExpiry reads the optional body of a PUT of a membership or grant:
// {"expires_at": RFC 3339} or {"ttl": duration}, not both; none (or {})
// makes the rule permanent.
func readExpiry(c echo.Context) (*time.Time, error) {
	fields, names, err := readObject(c)
	if err != nil {
		return nil, err
	}
	var until *time.Time
	for _, k := range names {
		v := fields[k]
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			return nil, badField(k, k+" must be a string.")
		}
		switch k {
		case "expires_at":
			t, err := time.Parse(time.RFC3339Nano, str)
			if err != nil {
				return nil, badField(k, "expires_at must be an RFC 3339 time, for example 2030-01-02T15:04:05Z.")
			}
			until = &t
		case "ttl":
			d, err := time.ParseDuration(str)
			if err != nil || d <= 0 {
				return nil, badField(k, "ttl must be a positive duration, for example 90m, 4h or 36h.")
			}
			t := time.Now().Add(d)
			until = &t
		default:
			return nil, badField(k, fmt.Sprintf("Unknown field %q: the body may hold expires_at or ttl.", k))
		}
	}
	if len(names) == 2 {
		return nil, badField("ttl", "Give expires_at or ttl, not both.")
	}
	return until, nil
}

// expiryWire is the end of a time-bound rule on the wire (null: permanent).
func expiryWire(at *time.Time) *string {
	if at == nil {
		return nil
	}
	s := timestamp(*at)
	return &s
}
