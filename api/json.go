package api

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

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

// The hot checks (has_permission above all) answer through okEncoded: the
// envelope of ok, written without reflection into a pooled buffer. It is
// byte for byte what ok writes (TestOKEncoded); a request with a query
// string (?pretty indents) takes ok's path.

var envelopePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// okEncoded answers 200 with the v1 envelope around data, JSON already
// encoded, and message.
func okEncoded(c echo.Context, data []byte, message string) error {
	if c.Request().URL.RawQuery != "" {
		return ok(c, json.RawMessage(data), "%s", message)
	}
	p := envelopePool.Get().(*[]byte)
	b := appendEnvelope((*p)[:0], data, message, time.Now())
	err := c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
	if cap(b) <= 64<<10 {
		*p = b
		envelopePool.Put(p)
	}
	return err
}

// appendEnvelope appends the JSON of envelope{200, data, message, true,
// timestamp(now)} and the newline json.Encoder ends with.
func appendEnvelope(b, data []byte, message string, now time.Time) []byte {
	b = append(b, `{"code":200,"data":`...)
	b = append(b, data...)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, message)
	b = append(b, `,"success":true,"timestamp":"`...)
	b = now.UTC().AppendFormat(b, timestampLayout)
	return append(b, "\"}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it with HTML escaping off: ", \ and control characters escaped
// (\b \f \n \r \t by name), invalid UTF-8 as \ufffd, U+2028 and U+2029
// escaped (FuzzAppendJSONString holds it to encoding/json).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
