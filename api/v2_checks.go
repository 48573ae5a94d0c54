package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// MaxBatchChecks is the most pairs one POST /api/v2/check may ask about.
const MaxBatchChecks = 1000

// v2Checks registers the permission checks and the policy file transfer of
// API v2.
func (s *Server) v2Checks() {
	get := []string{http.MethodGet, http.MethodHead}
	post := []string{http.MethodPost}
	// A refused or failed check or import is recorded like v1's (a
	// decision is recorded by the decision layer, a change by the core).
	s.v2Add(get, "/check", s.v2Check, false, s.audited(read(audit.CheckPermission, "user", "permission").fromQuery()))
	s.v2Add(post, "/check", s.v2CheckBatch, false, s.audited(read(audit.CheckPermission, "").fixed("check_batch")))
	s.v2Add(get, "/policy/export", s.v2ExportPolicy, false)
	s.v2Add(get, "/changes", s.v2Changes, false)
	s.v2Add(post, "/policy/import", s.v2ImportPolicy, true, s.audited(write(audit.ImportPolicy, "").fixed("policy")))
}

// Wire shapes of the v2 checks (keys in sorted order, as everywhere; a
// step says its type before its name, as the specification shows it).
type (
	v2CheckData struct {
		Allowed     bool           `json:"allowed"`
		Explanation *v2Explanation `json:"explanation,omitempty"`
		Permission  string         `json:"permission"`
		Revision    int64          `json:"revision"`
		User        string         `json:"user"`
	}
	v2Explanation struct {
		Path []v2Step `json:"path"`
		Rule []string `json:"rule"`
	}
	v2Step struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	v2BatchBody struct {
		Checks *[]v2BatchPair `json:"checks"`
	}
	v2BatchPair struct {
		Permission *string `json:"permission"`
		User       *string `json:"user"`
	}
	v2BatchResult struct {
		Allowed    bool   `json:"allowed"`
		Permission string `json:"permission"`
		User       string `json:"user"`
	}
	v2BatchData struct {
		Results  []v2BatchResult `json:"results"`
		Revision int64           `json:"revision"`
	}
)

// requiredQuery reads a query parameter that must be there and not empty.
func requiredQuery(c echo.Context, name string) (string, error) {
	v := c.QueryParam(name)
	if v == "" {
		return "", v2Fail(http.StatusBadRequest, ReasonInvalidParameter,
			"The query parameter "+name+" is required.", map[string]any{"parameter": name})
	}
	return v, nil
}

// boolQuery reads an optional true/false query parameter.
func boolQuery(c echo.Context, name string) (bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, v2Fail(http.StatusBadRequest, ReasonInvalidParameter,
			name+" must be true or false.", map[string]any{"parameter": name})
	}
	return b, nil
}

// v2Check answers GET /api/v2/check?user=&permission=[&explain=true].
func (s *Server) v2Check(c echo.Context) error {
	user, err := requiredQuery(c, "user")
	if err != nil {
		return err
	}
	perm, err := requiredQuery(c, "permission")
	if err != nil {
		return err
	}
	explain, err := boolQuery(c, "explain")
	if err != nil {
		return err
	}
	ctx, rc, err := consistent(c)
	if err != nil {
		return err
	}
	data := v2CheckData{Permission: perm, User: user}
	if explain {
		e, err := s.deps.Policy.Explain(ctx, tenantOf(c), user, perm)
		if err != nil {
			return err
		}
		data.Allowed = e.Allowed
		data.Explanation = &v2Explanation{Rule: e.Rule}
		if e.Path != nil {
			data.Explanation.Path = make([]v2Step, len(e.Path))
			for i, st := range e.Path {
				data.Explanation.Path[i] = v2Step{Type: st.Type, Name: st.Name}
			}
		}
	} else {
		data.Allowed, err = s.deps.Policy.HasPermission(ctx, tenantOf(c), user, perm)
		if err != nil {
			return err
		}
	}
	decided(c, data.Allowed)
	data.Revision = rc.Revision
	answeredAt(c, rc)
	return v2JSON(c, http.StatusOK, fmt.Sprintf("Permission check for user '%s' and permission '%s' completed", user, perm), data)
}

// decodeBody reads a JSON body into v. A body over its limit keeps its 413;
// anything else that is not one JSON value of v's shape is invalid_body.
func decodeBody(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	err := dec.Decode(v)
	if err == nil {
		// Nothing may follow the value; reading on also meets the body
		// limit when the last read went past it.
		switch _, terr := dec.Token(); {
		case terr == nil:
			err = errors.New("more than one JSON value")
		case terr != io.EOF:
			err = terr
		}
	}
	if err == nil {
		return nil
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return err
	}
	msg := "The body must be a JSON object."
	if errors.Is(err, io.EOF) {
		msg = "The body is empty: it must be a JSON object."
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return v2Fail(http.StatusBadRequest, ReasonInvalidBody,
			fmt.Sprintf("%s must be a JSON %s.", te.Field, jsonKind(te.Type.Kind().String())), map[string]any{"field": te.Field})
	}
	return v2Fail(http.StatusBadRequest, ReasonInvalidBody, msg)
}

// jsonKind names a Go kind as the JSON type a client sends.
func jsonKind(kind string) string {
	switch kind {
	case "slice", "array":
		return "array"
	case "string":
		return "string"
	case "bool":
		return "boolean"
	default:
		return "object"
	}
}

// v2CheckBatch answers POST /api/v2/check: up to MaxBatchChecks pairs,
// answered in order from one reading of the tenant. An invalid name in any
// pair refuses the whole batch (400 invalid_name, details.index).
func (s *Server) v2CheckBatch(c echo.Context) error {
	var body v2BatchBody
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	if body.Checks == nil || len(*body.Checks) == 0 {
		return v2Fail(http.StatusBadRequest, ReasonInvalidBody,
			`The body must be {"checks":[{"user":…,"permission":…},…]} with 1 to `+strconv.Itoa(MaxBatchChecks)+" pairs.",
			map[string]any{"field": "checks"})
	}
	pairs := *body.Checks
	if len(pairs) > MaxBatchChecks {
		return v2Fail(http.StatusBadRequest, ReasonBatchTooLarge,
			fmt.Sprintf("A batch holds at most %d checks, not %d.", MaxBatchChecks, len(pairs)),
			map[string]any{"max": MaxBatchChecks})
	}
	checks := make([]policy.Check, len(pairs))
	for i, p := range pairs {
		for _, f := range []struct {
			name string
			v    *string
		}{{"user", p.User}, {"permission", p.Permission}} {
			if f.v == nil {
				field := fmt.Sprintf("checks[%d].%s", i, f.name)
				return v2Fail(http.StatusBadRequest, ReasonInvalidBody, field+" is missing.",
					map[string]any{"field": field, "index": i})
			}
		}
		checks[i] = policy.Check{User: *p.User, Permission: *p.Permission}
	}
	ctx, rc, err := consistent(c)
	if err != nil {
		return err
	}
	allowed, err := s.deps.Policy.CheckBatch(ctx, tenantOf(c), checks)
	if err != nil {
		return err
	}
	answeredAt(c, rc)
	out := v2BatchData{Results: make([]v2BatchResult, len(checks)), Revision: rc.Revision}
	for i, ch := range checks {
		out.Results[i] = v2BatchResult{Allowed: allowed[i], Permission: ch.Permission, User: ch.User}
	}
	return v2JSON(c, http.StatusOK, fmt.Sprintf("%d permission checks completed", len(checks)), out)
}
