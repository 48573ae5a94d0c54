package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/policy"
)

// Wire shapes of the v2 policy file transfer (sorted keys).
type (
	v2ExportData struct {
		Format   string `json:"format"`
		Policy   string `json:"policy"`
		Revision int64  `json:"revision"`
		Roles    int    `json:"roles"`
		Rules    int    `json:"rules"`
		Version  int64  `json:"version"`
	}
	v2ImportBody struct {
		Policy *string `json:"policy"`
	}
	v2ImportData struct {
		DryRun       bool   `json:"dry_run"`
		Mode         string `json:"mode"`
		RolesCreated int    `json:"roles_created"`
		RolesDeleted int    `json:"roles_deleted"`
		RulesAdded   int    `json:"rules_added"`
		RulesRemoved int    `json:"rules_removed"`
		Revision     int64  `json:"revision,omitempty"`
		Version      int64  `json:"version"`
	}
)

// policyFormat names the format of exported and imported policies.
const policyFormat = "casbin-csv"

// v2ExportPolicy answers GET /api/v2/policy/export: the tenant's policy as
// a Casbin policy file.
func (s *Server) v2ExportPolicy(c echo.Context) error {
	ctx, rc, err := consistent(c)
	if err != nil {
		return err
	}
	f, err := s.deps.Policy.ExportPolicy(ctx, tenantOf(c))
	if err != nil {
		return err
	}
	answeredAt(c, rc)
	var b strings.Builder
	if err := f.WriteCSV(&b); err != nil {
		return err
	}
	return v2JSON(c, http.StatusOK, "Policy exported", v2ExportData{
		Format: policyFormat, Policy: b.String(), Roles: len(f.Roles), Rules: len(f.Rules), Version: f.Version, Revision: f.Version,
	})
}

// v2ImportPolicy answers POST /api/v2/policy/import[?dry_run=true][&mode=merge]:
// the policy file replaces (or, with mode=merge, is added to) the tenant's
// roles and rules in one audited change.
func (s *Server) v2ImportPolicy(c echo.Context) error {
	dry, err := boolQuery(c, "dry_run")
	if err != nil {
		return err
	}
	mode := c.QueryParam("mode")
	switch mode {
	case "":
		mode = "replace"
	case "replace", "merge":
	default:
		return v2Fail(http.StatusBadRequest, ReasonInvalidParameter, "mode must be replace or merge.",
			map[string]any{"parameter": "mode"})
	}
	var body v2ImportBody
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	if body.Policy == nil {
		return v2Fail(http.StatusBadRequest, ReasonInvalidBody,
			`The body must be {"policy":"<policy file as CSV text>"}.`, map[string]any{"field": "policy"})
	}
	f, err := policy.ParsePolicyCSV(strings.NewReader(*body.Policy))
	if err != nil {
		return err
	}
	res, err := s.deps.Policy.ImportPolicy(c.Request().Context(), tenantOf(c), f,
		policy.ImportOptions{Merge: mode == "merge", DryRun: dry})
	if err != nil {
		return err
	}
	msg := "Policy imported"
	if dry {
		msg = "Policy validated (dry run): nothing was changed"
	}
	return v2JSON(c, http.StatusOK, msg, v2ImportData{
		DryRun: dry, Mode: mode, RolesCreated: res.RolesCreated, RolesDeleted: res.RolesDeleted,
		RulesAdded: res.RulesAdded, RulesRemoved: res.RulesRemoved, Version: res.Version, Revision: committed(c),
	})
}
