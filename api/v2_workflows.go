package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/workflow"
)

// Registry is what the API needs from the workflow registry
// (workflow.Registry).
type Registry interface {
	Put(ctx context.Context, key policy.KeyHash, name string, spec workflow.Spec) (workflow.Stored, bool, string, error)
	Get(ctx context.Context, key policy.KeyHash, name string) (workflow.Stored, error)
	List(ctx context.Context, key policy.KeyHash, after string, limit int) ([]workflow.Stored, error)
	Delete(ctx context.Context, key policy.KeyHash, name string) (bool, error)
	RotateSecret(ctx context.Context, key policy.KeyHash, name string, grace time.Duration) (string, time.Time, error)
	RunNow(ctx context.Context, key policy.KeyHash, name string) (workflow.RunRecord, error)
	Runs(ctx context.Context, key policy.KeyHash, name string, beforeID int64, limit int) ([]workflow.RunRecord, error)
	NextRun(w workflow.Stored) time.Time
}

// Wire shapes of workflows and their runs; fields in sorted order.
type (
	v2Workflow struct {
		CatchUp     bool    `json:"catch_up"`
		CreatedAt   string  `json:"created_at"`
		Description *string `json:"description"`
		Enabled     bool    `json:"enabled"`
		Name        string  `json:"name"`
		NextRunAt   *string `json:"next_run_at"`
		Notify      string  `json:"notify"`
		Permission  string  `json:"permission"`
		Schedule    string  `json:"schedule"`
		UpdatedAt   string  `json:"updated_at"`
		WebhookURL  *string `json:"webhook_url"`
	}
	v2WorkflowPut struct {
		CatchUp     bool    `json:"catch_up"`
		Created     bool    `json:"created"`
		CreatedAt   string  `json:"created_at"`
		Description *string `json:"description"`
		Enabled     bool    `json:"enabled"`
		Name        string  `json:"name"`
		NextRunAt   *string `json:"next_run_at"`
		Notify      string  `json:"notify"`
		Permission  string  `json:"permission"`
		Schedule    string  `json:"schedule"`
		Secret      string  `json:"secret,omitempty"`
		UpdatedAt   string  `json:"updated_at"`
		WebhookURL  *string `json:"webhook_url"`
	}
	v2WorkflowDeleted struct {
		Deleted bool   `json:"deleted"`
		Name    string `json:"name"`
	}
	v2Secret struct {
		Name               string  `json:"name"`
		PreviousValidUntil *string `json:"previous_valid_until"`
		Secret             string  `json:"secret"`
	}
	v2Run struct {
		Added       []string   `json:"added"`
		Attempt     int        `json:"attempt"`
		Count       int        `json:"count"`
		DurationMS  int64      `json:"duration_ms"`
		Error       *string    `json:"error"`
		FinishedAt  *string    `json:"finished_at"`
		ID          string     `json:"id"`
		Outcome     string     `json:"outcome"`
		Removed     []string   `json:"removed"`
		ScheduledAt string     `json:"scheduled_at"`
		StartedAt   string     `json:"started_at"`
		Trigger     string     `json:"trigger"`
		Users       []string   `json:"users"`
		Webhook     *v2Webhook `json:"webhook"`
	}
	v2Webhook struct {
		Attempts int     `json:"attempts"`
		Error    *string `json:"error"`
		Outcome  string  `json:"outcome"`
		Status   *int    `json:"status"`
	}
)

// v2Workflows registers the workflow routes. Registry changes are
// recorded as the API's own events. A server without a registry answers
// them 404.
func (s *Server) v2Workflows() {
	get := []string{http.MethodGet}
	post, put, del := []string{http.MethodPost}, []string{http.MethodPut}, []string{http.MethodDelete}
	r := func(m []string, path string, h echo.HandlerFunc, spec auditSpec) {
		s.v2Add(m, path, h, spec.write, s.audited(spec), s.withRegistry)
	}
	changed := func(a audit.Action) auditSpec {
		sp := write(a, "", "workflow").prefixed("workflow:")
		sp.always = true
		return sp
	}
	r(get, "/workflows", s.v2ListWorkflows, read(audit.ListWorkflows, "").fixed("workflows"))
	r(get, "/workflows/:workflow", s.v2GetWorkflow, read(audit.ListWorkflows, "", "workflow").prefixed("workflow:"))
	r(put, "/workflows/:workflow", s.v2PutWorkflow, changed(audit.PutWorkflow))
	r(del, "/workflows/:workflow", s.v2DeleteWorkflow, changed(audit.DeleteWorkflow))
	r(post, "/workflows/:workflow/secret", s.v2RotateWorkflowSecret, changed(audit.RotateWorkflowSecret))
	r(post, "/workflows/:workflow/run", s.v2RunWorkflow, changed(audit.RunWorkflow))
	r(get, "/workflows/:workflow/runs", s.v2WorkflowRuns, read(audit.ListWorkflows, "", "workflow").prefixed("runs:"))
}

// withRegistry answers 404 when the server keeps no workflows.
func (s *Server) withRegistry(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.deps.Registry == nil {
			return v2Fail(http.StatusNotFound, ReasonNotFound, "This server keeps no workflows.")
		}
		return next(c)
	}
}

// wireTime is a time as every v2 answer writes it.
func wireTime(t time.Time) string { return timestamp(t) }

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	v := wireTime(t)
	return &v
}

func optString(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

func (s *Server) wireWorkflow(w workflow.Stored) v2Workflow {
	return v2Workflow{CatchUp: w.CatchUp, CreatedAt: wireTime(w.CreatedAt), Description: w.Description,
		Enabled: w.Enabled, Name: w.Name, NextRunAt: optTime(s.deps.Registry.NextRun(w)), Notify: string(w.Notify),
		Permission: w.Permission, Schedule: w.Schedule, UpdatedAt: wireTime(w.UpdatedAt),
		WebhookURL: optString(w.WebhookURL)}
}

func wireRun(r workflow.RunRecord) v2Run {
	out := v2Run{Added: nonNil(r.Added), Attempt: r.Attempt, Count: len(r.Users), DurationMS: r.DurationMS,
		Error: optString(r.Error), FinishedAt: optTime(r.Finished), ID: strconv.FormatInt(r.ID, 10),
		Outcome: string(r.Outcome), Removed: nonNil(r.Removed), ScheduledAt: wireTime(r.Scheduled),
		StartedAt: wireTime(r.Started), Trigger: string(r.Trigger), Users: nonNil(r.Users)}
	if w := r.Webhook; w != nil {
		out.Webhook = &v2Webhook{Attempts: w.Attempts, Error: optString(w.Error), Outcome: string(w.Outcome)}
		if w.Status != 0 {
			st := w.Status
			out.Webhook.Status = &st
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// readWorkflowBody reads a PUT body: a JSON object of known fields only.
func readWorkflowBody(c echo.Context) (workflow.Spec, error) {
	var spec workflow.Spec
	fields, names, err := readObject(c)
	if err != nil {
		return spec, err
	}
	if fields == nil {
		return spec, badField("schedule", "The body must be a JSON object with at least 'schedule'.")
	}
	str := func(k string, v json.RawMessage, dst *string, nullable bool) error {
		if string(v) == "null" && nullable {
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil || string(v) == "null" {
			return badField(k, k+" must be a string.")
		}
		return nil
	}
	boolean := func(k string, v json.RawMessage, dst **bool) error {
		var b bool
		if err := json.Unmarshal(v, &b); err != nil || string(v) == "null" {
			return badField(k, k+" must be true or false.")
		}
		*dst = &b
		return nil
	}
	for _, k := range names {
		v := fields[k]
		var err error
		switch k {
		case "schedule":
			err = str(k, v, &spec.Schedule, false)
		case "permission":
			err = str(k, v, &spec.Permission, true)
		case "webhook_url":
			err = str(k, v, &spec.WebhookURL, true)
		case "notify":
			err = str(k, v, &spec.Notify, true)
		case "description":
			if string(v) != "null" {
				var d string
				if json.Unmarshal(v, &d) != nil {
					err = badField(k, "description must be a string or null.")
				}
				spec.Description = &d
			}
		case "enabled":
			err = boolean(k, v, &spec.Enabled)
		case "catch_up":
			err = boolean(k, v, &spec.CatchUp)
		default:
			err = badField(k, fmt.Sprintf("Unknown field %q.", k))
		}
		if err != nil {
			return spec, err
		}
	}
	if _, ok := fields["schedule"]; !ok {
		return spec, badField("schedule", "Field 'schedule' is required: a cron expression such as '*/5 * * * *' or an interval such as '5m'.")
	}
	return spec, nil
}

func (s *Server) v2PutWorkflow(c echo.Context) error {
	name := param(c, "workflow")
	spec, err := readWorkflowBody(c)
	if err != nil {
		return err
	}
	w, created, secret, err := s.deps.Registry.Put(c.Request().Context(), tenantOf(c), name, spec)
	if err != nil {
		return err
	}
	ww := s.wireWorkflow(w)
	out := v2WorkflowPut{CatchUp: ww.CatchUp, Created: created, CreatedAt: ww.CreatedAt, Description: ww.Description,
		Enabled: ww.Enabled, Name: ww.Name, NextRunAt: ww.NextRunAt, Notify: ww.Notify, Permission: ww.Permission,
		Schedule: ww.Schedule, Secret: secret, UpdatedAt: ww.UpdatedAt, WebhookURL: ww.WebhookURL}
	msg := fmt.Sprintf("Workflow '%s' updated.", name)
	if created {
		msg = fmt.Sprintf("Workflow '%s' created; keep its signing secret: it is shown only once.", name)
	}
	return v2JSON(c, createdStatus(created), msg, out)
}

func (s *Server) v2GetWorkflow(c echo.Context) error {
	w, err := s.deps.Registry.Get(c.Request().Context(), tenantOf(c), param(c, "workflow"))
	if err != nil {
		return err
	}
	return v2JSON(c, http.StatusOK, "OK", s.wireWorkflow(w))
}

func (s *Server) v2ListWorkflows(c echo.Context) error {
	p, err := parsePage(c)
	if err != nil {
		return err
	}
	list, err := s.deps.Registry.List(c.Request().Context(), tenantOf(c), p.after, p.limit+1)
	if err != nil {
		return err
	}
	page := Page[v2Workflow]{Items: []v2Workflow{}}
	for i, w := range list {
		if i == p.limit {
			next := encodeCursor(list[i-1].Name)
			page.NextCursor = &next
			break
		}
		page.Items = append(page.Items, s.wireWorkflow(w))
	}
	return v2JSON(c, http.StatusOK, "OK", page)
}

func (s *Server) v2DeleteWorkflow(c echo.Context) error {
	name := param(c, "workflow")
	deleted, err := s.deps.Registry.Delete(c.Request().Context(), tenantOf(c), name)
	if err != nil {
		return err
	}
	return v2JSON(c, http.StatusOK, fmt.Sprintf("Workflow '%s' %s.", name, deletedWord(deleted)),
		v2WorkflowDeleted{Deleted: deleted, Name: name})
}

func (s *Server) v2RotateWorkflowSecret(c echo.Context) error {
	name := param(c, "workflow")
	grace, err := readGrace(c)
	if err != nil {
		return err
	}
	secret, until, err := s.deps.Registry.RotateSecret(c.Request().Context(), tenantOf(c), name, grace)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("Workflow '%s' has a new signing secret; the previous one no longer signs.", name)
	if !until.IsZero() {
		msg = fmt.Sprintf("Workflow '%s' has a new signing secret; the previous one signs too until %s.", name, wireTime(until))
	}
	return v2JSON(c, http.StatusOK, msg, v2Secret{Name: name, Secret: secret, PreviousValidUntil: optTime(until)})
}

// readGrace reads the optional body {"grace": "24h"} of a secret rotation.
func readGrace(c echo.Context) (time.Duration, error) {
	fields, names, err := readObject(c)
	if err != nil {
		return 0, err
	}
	grace := workflow.DefaultSecretGrace
	for _, k := range names {
		v := fields[k]
		if k != "grace" {
			return 0, badField(k, fmt.Sprintf("Unknown field %q.", k))
		}
		var text string
		if err := json.Unmarshal(v, &text); err != nil {
			return 0, badField(k, "grace must be a duration such as '24h' or '0s'.")
		}
		d, err := time.ParseDuration(text)
		if err != nil {
			return 0, badField(k, "grace must be a duration such as '24h' or '0s'.")
		}
		grace = d
	}
	return grace, nil
}

func (s *Server) v2RunWorkflow(c echo.Context) error {
	name := param(c, "workflow")
	run, err := s.deps.Registry.RunNow(c.Request().Context(), tenantOf(c), name)
	if err != nil {
		return err
	}
	return v2JSON(c, http.StatusOK, fmt.Sprintf("Workflow '%s' ran: %d users may run it.", name, len(run.Users)), wireRun(run))
}

func (s *Server) v2WorkflowRuns(c echo.Context) error {
	p, err := parsePage(c)
	if err != nil {
		return err
	}
	var before int64
	if p.after != "" {
		if before, err = strconv.ParseInt(p.after, 10, 64); err != nil || before <= 0 {
			return v2Fail(http.StatusBadRequest, ReasonInvalidCursor,
				"cursor is not one this service returned: pass next_cursor of the previous page unchanged.",
				map[string]any{"parameter": "cursor"})
		}
	}
	runs, err := s.deps.Registry.Runs(c.Request().Context(), tenantOf(c), param(c, "workflow"), before, p.limit+1)
	if err != nil {
		return err
	}
	page := Page[v2Run]{Items: []v2Run{}}
	for i, r := range runs {
		if i == p.limit {
			next := encodeCursor(strconv.FormatInt(runs[i-1].ID, 10))
			page.NextCursor = &next
			break
		}
		page.Items = append(page.Items, wireRun(r))
	}
	return v2JSON(c, http.StatusOK, "OK", page)
}
