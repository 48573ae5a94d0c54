// Package openapitest checks HTTP answers against the service's OpenAPI 3.1
// document (api.OpenAPIDocument): tests use it to prove that what the
// server answers is what the document describes.
package openapitest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// docURL is the name the document is compiled under.
const docURL = "https://auth-server.invalid/openapi.json"

// ErrNotDocumented is returned for a path the document does not describe.
var ErrNotDocumented = errors.New("path not documented")

// Validator checks answers against one OpenAPI document.
type Validator struct {
	doc      map[string]any
	paths    []pathTemplate
	compiler *jsonschema.Compiler

	mu       sync.Mutex
	compiled map[string]*jsonschema.Schema
}

// pathTemplate is a documented path split into segments; "{x}" matches any
// one non-empty segment.
type pathTemplate struct {
	path     string
	segments []string
	literals int
}

// New parses an OpenAPI document (JSON) and prepares to validate against
// it. It fails if the document does not parse, is not OpenAPI 3.1, or a
// $ref in it does not resolve.
func New(doc []byte) (*Validator, error) {
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, errors.New("openapi document: not a JSON object")
	}
	if v, _ := m["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		return nil, fmt.Errorf("openapi document: version %q, want 3.1.x", v)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(docURL, raw); err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	v := &Validator{doc: m, compiler: c, compiled: map[string]*jsonschema.Schema{}}
	paths, ok := m["paths"].(map[string]any)
	if !ok {
		return nil, errors.New("openapi document: no paths")
	}
	for p := range paths {
		t := pathTemplate{path: p, segments: strings.Split(strings.TrimPrefix(p, "/"), "/")}
		for _, s := range t.segments {
			if !isParam(s) {
				t.literals++
			}
		}
		v.paths = append(v.paths, t)
	}
	sort.Slice(v.paths, func(i, j int) bool { return v.paths[i].path < v.paths[j].path })
	if err := v.checkRefs(); err != nil {
		return nil, err
	}
	return v, nil
}

func isParam(seg string) bool { return strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") }

// Doc is the parsed document.
func (v *Validator) Doc() map[string]any { return v.doc }

// Paths lists the documented paths, sorted.
func (v *Validator) Paths() []string {
	out := make([]string, len(v.paths))
	for i, p := range v.paths {
		out[i] = p.path
	}
	return out
}

// Operations lists the documented "METHOD path" pairs, sorted.
func (v *Validator) Operations() []string {
	var out []string
	paths := v.doc["paths"].(map[string]any)
	for p, item := range paths {
		for m := range item.(map[string]any) {
			switch m {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				out = append(out, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Match returns the documented path that a request path (which may hold
// percent-escapes and a query) falls under.
func (v *Validator) Match(requestPath string) (string, bool) {
	p, _, _ := strings.Cut(requestPath, "?")
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	best, bestLit := "", -1
	for _, t := range v.paths {
		if len(t.segments) != len(segs) || t.literals <= bestLit {
			continue
		}
		ok := true
		for i, s := range t.segments {
			if isParam(s) {
				ok = segs[i] != ""
			} else {
				ok = s == segs[i]
			}
			if !ok {
				break
			}
		}
		if ok {
			best, bestLit = t.path, t.literals
		}
	}
	return best, bestLit >= 0
}

// ValidateResponse checks an answer to method requestPath: its status must
// be documented for the operation, its media type one the response
// declares, and a JSON body must validate against the response's schema.
// It returns ErrNotDocumented (wrapped) for a path outside the document; a
// 405 to a documented path with a method it does not have is accepted (the
// route answers it, the operation does not exist), and so is a 204 without
// a body to OPTIONS. HEAD is checked as GET without a body.
func (v *Validator) ValidateResponse(method, requestPath string, status int, contentType string, body []byte) error {
	path, ok := v.Match(requestPath)
	if !ok {
		return fmt.Errorf("%s: %w", requestPath, ErrNotDocumented)
	}
	opMethod := strings.ToLower(method)
	if method == http.MethodHead {
		opMethod = "get"
	}
	item := v.doc["paths"].(map[string]any)[path].(map[string]any)
	op, ok := item[opMethod].(map[string]any)
	if !ok {
		// The router answers a method a path does not have (405), and
		// OPTIONS on every path (204, no body; CORS preflight).
		if status == http.StatusMethodNotAllowed ||
			(method == http.MethodOptions && status == http.StatusNoContent && len(body) == 0) {
			return nil
		}
		return fmt.Errorf("%s %s is not documented (path %s), answered %d", method, requestPath, path, status)
	}
	responses, _ := op["responses"].(map[string]any)
	code := strconv.Itoa(status)
	respPtr := "/paths/" + escape(path) + "/" + opMethod + "/responses/"
	resp, ok := responses[code].(map[string]any)
	switch {
	case ok:
		respPtr += code
	case responses[code[:1]+"XX"] != nil:
		respPtr += code[:1] + "XX"
		resp = responses[code[:1]+"XX"].(map[string]any)
	case responses["default"] != nil:
		respPtr += "default"
		resp = responses["default"].(map[string]any)
	default:
		return fmt.Errorf("%s %s (%s): status %d is not documented", method, requestPath, path, status)
	}
	if target, ok := resp["$ref"].(string); ok {
		respPtr = strings.TrimPrefix(target, "#")
		if resp, ok = v.pointer(respPtr).(map[string]any); !ok {
			return fmt.Errorf("%s %s: response $ref %s does not resolve", method, requestPath, target)
		}
	}
	if method == http.MethodHead {
		return nil
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(bytes.TrimSpace(body)) > 0 {
			return fmt.Errorf("%s %s (%s) -> %d: a body where the document declares none", method, requestPath, path, status)
		}
		return nil
	}
	media, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("%s %s (%s) -> %d: Content-Type %q: %v", method, requestPath, path, status, contentType, err)
	}
	if _, ok := content[media]; !ok {
		return fmt.Errorf("%s %s (%s) -> %d: media type %s, the document declares %v", method, requestPath, path, status, media, slices.Sorted(maps.Keys(content)))
	}
	if media != "application/json" {
		return nil
	}
	sch, err := v.schema(respPtr + "/content/" + escape(media) + "/schema")
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s (%s) -> %d: body is not JSON: %v", method, requestPath, path, status, err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("%s %s (%s) -> %d: the body does not match the schema of response %s: %v\nbody: %s",
			method, requestPath, path, status, code, err, bytes.TrimSpace(body))
	}
	return nil
}

// Schema compiles the schema at a JSON pointer of the document (such as
// /components/schemas/Error).
func (v *Validator) Schema(pointer string) (*jsonschema.Schema, error) { return v.schema(pointer) }

func (v *Validator) schema(ptr string) (*jsonschema.Schema, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.compiled[ptr]; ok {
		return s, nil
	}
	s, err := v.compiler.Compile(docURL + "#" + ptr)
	if err != nil {
		return nil, fmt.Errorf("compile schema %s: %w", ptr, err)
	}
	v.compiled[ptr] = s
	return s, nil
}

// checkRefs resolves every $ref of the document and compiles every schema
// of every request body, response and parameter, and of the components.
func (v *Validator) checkRefs() error {
	var errs []error
	var walk func(node any, ptr string)
	walk = func(node any, ptr string) {
		switch n := node.(type) {
		case map[string]any:
			if r, ok := n["$ref"].(string); ok {
				if !strings.HasPrefix(r, "#/") || v.pointer(strings.TrimPrefix(r, "#")) == nil {
					errs = append(errs, fmt.Errorf("%s: $ref %q does not resolve", ptr, r))
				}
			}
			for k, c := range n {
				walk(c, ptr+"/"+escape(k))
			}
			if s, ok := n["schema"]; ok {
				if _, isObj := s.(map[string]any); isObj {
					if _, err := v.schema(ptr + "/schema"); err != nil {
						errs = append(errs, err)
					}
				}
			}
		case []any:
			for i, c := range n {
				walk(c, ptr+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(v.doc, "")
	if comps, ok := v.doc["components"].(map[string]any); ok {
		if schemas, ok := comps["schemas"].(map[string]any); ok {
			for name := range schemas {
				if _, err := v.schema("/components/schemas/" + escape(name)); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// pointer resolves a JSON pointer in the document (nil if it does not).
func (v *Validator) pointer(ptr string) any {
	var node any = v.doc
	if ptr == "" {
		return node
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch n := node.(type) {
		case map[string]any:
			node = n[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n) {
				return nil
			}
			node = n[i]
		default:
			return nil
		}
		if node == nil {
			return nil
		}
	}
	return node
}

// escape is a JSON pointer token.
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
