package openapitest

import (
	"strings"
	"testing"
)

// TestNewRefusesBrokenDocuments: a document that is not OpenAPI 3.1, has a
// $ref that does not resolve or a schema that is not JSON Schema is refused.
func TestNewRefusesBrokenDocuments(t *testing.T) {
	const ok200 = `"responses":{"200":{"description":"OK","content":{"application/json":{"schema":%s}}}}`
	doc := func(version, s string) string {
		return `{"openapi":"` + version + `","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{` +
			strings.Replace(ok200, "%s", s, 1) + `}}},"components":{"schemas":{"A":{"type":"string"}}}}`
	}
	cases := []struct {
		name, doc, wantErr string
	}{
		{"valid", doc("3.1.0", `{"$ref":"#/components/schemas/A"}`), ""},
		{"not JSON", `{"openapi":`, "openapi document"},
		{"3.0", doc("3.0.3", `{"type":"string"}`), "3.1"},
		{"broken ref", doc("3.1.0", `{"$ref":"#/components/schemas/B"}`), "does not resolve"},
		{"bad schema", doc("3.1.0", `{"type":5}`), "compile schema"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New([]byte(tc.doc))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one about %q", err, tc.wantErr)
			}
		})
	}
}
