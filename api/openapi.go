package api

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
)

// Paths of the machine-readable description and of its page.
const (
	OpenAPIPath  = "/openapi.json"
	DocsPath     = "/docs"
	DocsCSSPath  = "/docs/style.css"
	docsCSP      = "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	v1AliasKey   = "x-alias-of"
	openAPIVer   = "3.1.0"
	docVersion   = "2"
	errorSchema  = "Error"
	errorSchema2 = "ErrorV2"
)

//go:embed openapi/docs.html.tmpl openapi/style.css
var docsFiles embed.FS

// commonErrors are the error statuses every authenticated route may answer.
var commonErrors = []int{
	http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge,
	http.StatusUnsupportedMediaType, http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable,
}

// statusMeaning describes a status of an answer.
var statusMeaning = map[int]string{
	http.StatusOK:                    "OK",
	http.StatusCreated:               "Created",
	http.StatusBadRequest:            "A malformed request or an invalid name.",
	http.StatusUnauthorized:          "No, a malformed, an unknown, a revoked or an expired credential.",
	http.StatusForbidden:             "A check token asking for a change, or a token where the client key is needed.",
	http.StatusNotFound:              "Not found (v2: details.reason role_not_found names the missing role).",
	http.StatusConflict:              "A conflict with the current state.",
	http.StatusRequestEntityTooLarge: "A body over its limit.",
	http.StatusUnsupportedMediaType:  "A body that is not JSON.",
	http.StatusTooManyRequests:       "Over a rate limit (Retry-After, RateLimit-* headers).",
	http.StatusInternalServerError:   "An internal error (the cause is in the server's log, with the request id).",
	http.StatusServiceUnavailable:    "The database is unreachable (Retry-After).",
}

// OpenAPIDocument returns the OpenAPI 3.1 document of the service (JSON).
func OpenAPIDocument() []byte { return slices.Clone(openAPIJSON()) }

var openAPIJSON = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(buildOpenAPI()); err != nil {
		panic("openapi: " + err.Error()) // the document is static data
	}
	return buf.Bytes()
})

// buildOpenAPI assembles the document from the route tables.
func buildOpenAPI() schema {
	paths := schema{}
	for _, r := range opsRouteList() {
		addOperation(paths, r.path, r, "", errorSchema)
	}
	for _, r := range v1Routes() {
		addOperation(paths, "/api"+r.path, r, "", errorSchema)
		addOperation(paths, "/api/v1"+r.path, r, "V1", errorSchema)
		paths["/api/v1"+r.path].(schema)[v1AliasKey] = "/api" + r.path
	}
	for _, r := range v2RouteList() {
		addOperation(paths, V2Prefix+r.path, r, "", errorSchema2)
	}
	responses := schema{}
	for _, name := range []string{errorSchema, errorSchema2} {
		responses[name] = schema{
			"description": "The error envelope.",
			"headers": schema{
				"Retry-After": schema{"description": "Seconds to wait (429, 503).", "schema": schema{"type": "string"}},
			},
			"content": schema{"application/json": schema{"schema": ref(name)}},
		}
	}
	return schema{
		"openapi": openAPIVer,
		"info": schema{
			"title":   "auth-server",
			"version": docVersion,
			"description": "Multi-tenant RBAC authorization service. /api/v2 is the consistent API: every answer " +
				"the envelope, every error with details.reason. The compatible v1 routes under /api keep the " +
				"original service's exact shapes and are also served under /api/v1 (each /api/v1 path names " +
				"its twin in " + v1AliasKey + "). Every GET route also answers HEAD (no body).",
			"license": schema{"name": "MIT", "identifier": "MIT"},
		},
		"security": []schema{{"bearer": []string{}}},
		"tags":     tagList(),
		"paths":    paths,
		"components": schema{
			"securitySchemes": schema{
				"bearer": schema{"type": "http", "scheme": "bearer",
					"description": "A client key (UUID4), a token from POST /api/token, or an identity provider's token."},
				"metricsToken": schema{"type": "http", "scheme": "bearer",
					"description": "AUTH_METRICS_TOKEN, when one is set."},
			},
			"schemas":   components(),
			"responses": responses,
		},
	}
}

// tagList names the tags in the order of the page.
func tagList() []schema {
	var out []schema
	for _, t := range []string{"Operations", "Memberships", "Permissions", "Roles", "Workflows", "Audit", "Tokens and keys",
		"v2 roles", "v2 users", "v2 permissions", "v2 checks", "v2 policy", "v2 workflows"} {
		out = append(out, schema{"name": t})
	}
	return out
}

// addOperation adds r at path to paths; idSuffix tells twins apart and
// errName is the error schema of the path's API version.
func addOperation(paths schema, path string, r route, idSuffix, errName string) {
	item, _ := paths[path].(schema)
	if item == nil {
		item = schema{}
		paths[path] = item
	}
	var params []schema
	for _, m := range pathParamRE.FindAllStringSubmatch(path, -1) {
		d, s := pathParamDoc(m[1])
		params = append(params, schema{"name": m[1], "in": "path", "required": true, "description": d, "schema": s})
	}
	for _, q := range r.query {
		params = append(params, schema{"name": q.name, "in": "query", "required": q.required, "description": q.description, "schema": q.s})
	}
	op := schema{"operationId": r.id + idSuffix, "summary": r.summary, "tags": []string{r.tag}}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if r.body != nil {
		op["requestBody"] = schema{"required": !r.bodyOptional,
			"content": schema{"application/json": schema{"schema": r.body}}}
	}
	media := r.media
	if media == "" {
		media = "application/json"
	}
	responses := schema{}
	for code, s := range r.ok {
		responses[strconv.Itoa(code)] = schema{"description": statusMeaning[code],
			"content": schema{media: schema{"schema": s}}}
		if media != "application/json" {
			break
		}
	}
	errs := slices.Clone(r.errors)
	if r.public {
		op["security"] = []schema{}
		if r.path == "/metrics" {
			op["security"] = []schema{{}, {"metricsToken": []string{}}}
		}
	} else {
		errs = append(errs, commonErrors...)
	}
	for _, code := range errs {
		if _, dup := responses[strconv.Itoa(code)]; !dup {
			responses[strconv.Itoa(code)] = schema{"$ref": "#/components/responses/" + errName, "description": statusMeaning[code]}
		}
	}
	op["responses"] = responses
	item[lower(r.method)] = op
}

// docsRoutes serves the document and its page; neither needs a credential.
func (s *Server) docsRoutes() {
	get := []string{http.MethodGet, http.MethodHead}
	s.echo.Match(get, OpenAPIPath, func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIJSON())
	})
	s.echo.Match(get, DocsPath, func(c echo.Context) error {
		page, err := docsPage()
		if err != nil {
			return err
		}
		c.Response().Header().Set("Content-Security-Policy", docsCSP)
		return c.HTMLBlob(http.StatusOK, page)
	})
	s.echo.Match(get, DocsCSSPath, func(c echo.Context) error {
		css, err := docsFiles.ReadFile("openapi/style.css")
		if err != nil {
			return err
		}
		c.Response().Header().Set("Content-Security-Policy", docsCSP)
		return c.Blob(http.StatusOK, "text/css; charset=utf-8", css)
	})
}

// Views of the page.
type (
	docsView struct {
		Title, Version, Description string
		Tags                        []docsTag
		Reasons                     []string
		Schemas                     []docsSchema
	}
	docsTag struct {
		Name string
		Ops  []docsOp
	}
	docsOp struct {
		Method, Path, Summary, AliasOf, ID string
		Params                             []docsParam
		Body                               string
		Responses                          []docsResponse
		Public                             bool
	}
	docsParam struct {
		Name, In, Description string
		Required              bool
	}
	docsResponse struct {
		Status, Description, Media, Schema string
	}
	docsSchema struct {
		Name, JSON string
	}
)

// docsPage renders the page from the served document.
var docsPage = sync.OnceValues(func() ([]byte, error) {
	tmpl, err := template.ParseFS(docsFiles, "openapi/docs.html.tmpl")
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(openAPIJSON(), &doc); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, docsViewOf(doc)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
})

func docsViewOf(doc map[string]any) docsView {
	info := doc["info"].(map[string]any)
	v := docsView{Title: info["title"].(string), Version: info["version"].(string),
		Description: info["description"].(string), Reasons: Reasons}
	byTag := map[string]*docsTag{}
	for _, t := range doc["tags"].([]any) {
		name := t.(map[string]any)["name"].(string)
		v.Tags = append(v.Tags, docsTag{Name: name})
	}
	for i := range v.Tags {
		byTag[v.Tags[i].Name] = &v.Tags[i]
	}
	paths := doc["paths"].(map[string]any)
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		item := paths[p].(map[string]any)
		alias, _ := item[v1AliasKey].(string)
		for _, m := range []string{"get", "put", "post", "delete"} {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			o := docsOp{Method: strings.ToUpper(m), Path: p, AliasOf: alias, ID: op["operationId"].(string)}
			o.Summary, _ = op["summary"].(string)
			if sec, ok := op["security"].([]any); ok && len(sec) == 0 {
				o.Public = true
			}
			params, _ := op["parameters"].([]any)
			for _, x := range params {
				pm := x.(map[string]any)
				d, _ := pm["description"].(string)
				r, _ := pm["required"].(bool)
				o.Params = append(o.Params, docsParam{Name: pm["name"].(string), In: pm["in"].(string), Description: d, Required: r})
			}
			if rb, ok := op["requestBody"].(map[string]any); ok {
				o.Body = indentJSON(rb["content"].(map[string]any)["application/json"].(map[string]any)["schema"])
			}
			resps := op["responses"].(map[string]any)
			for _, code := range slices.Sorted(maps.Keys(resps)) {
				r := resps[code].(map[string]any)
				d, _ := r["description"].(string)
				dr := docsResponse{Status: code, Description: d}
				if target, ok := r["$ref"].(string); ok {
					dr.Media, dr.Schema = "application/json", strings.TrimPrefix(target, "#/components/responses/")
				}
				if content, ok := r["content"].(map[string]any); ok {
					for media, mt := range content {
						dr.Media, dr.Schema = media, indentJSON(mt.(map[string]any)["schema"])
					}
				}
				o.Responses = append(o.Responses, dr)
			}
			tags := op["tags"].([]any)
			if t := byTag[tags[0].(string)]; t != nil {
				t.Ops = append(t.Ops, o)
			}
		}
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(schemas)) {
		v.Schemas = append(v.Schemas, docsSchema{Name: name, JSON: indentJSON(schemas[name])})
	}
	return v
}

func indentJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	return strings.TrimSpace(buf.String())
}
