package api

import (
	"encoding/json"

	"github.com/labstack/echo/v4"
)

// jsonSerializer is Echo's JSON serializer without HTML escaping: the API
// answers JSON, never HTML, so "<token>" is written as is instead of as
// "\u003ctoken\u003e" (a JSON parser reads both the same). Reading
// request bodies is Echo's own (the embedded DefaultJSONSerializer).
type jsonSerializer struct{ echo.DefaultJSONSerializer }

// Serialize writes i as JSON (indented by indent when it is not empty),
// with <, > and & unescaped.
func (jsonSerializer) Serialize(c echo.Context, i any, indent string) error {
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}
