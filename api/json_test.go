package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// encoded is what the generic path (encoding/json through the API's
// serializer, HTML escaping off) writes for v.
func encoded(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var jsonStrings = []string{
	"", "plain", "with 'quotes' and \"double\"", `back\slash`, "<html>&amp;", "tab\tnew\nline\rcr",
	"\b\f\x00\x01\x1f\x7f", "é ü 日本 🙂", "\u2028\u2029", "bad \xff\xfe utf-8", "\xe2\x80", "end\xc3",
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range jsonStrings {
		want := bytes.TrimSuffix(encoded(t, s), []byte("\n"))
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := bytes.TrimSuffix(encoded(t, s), []byte("\n"))
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}

// TestOKEncoded holds the encoded envelope to ok's: the same bytes for the
// same answer, and ok's own path when the request has a query (?pretty).
func TestOKEncoded(t *testing.T) {
	now := time.Date(2026, 12, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	for _, has := range []bool{true, false} {
		for _, m := range jsonStrings {
			got := appendEnvelope(nil, checkJSON(has), m, now)
			want := encoded(t, envelope{Code: 200, Data: checkData{has}, Message: m, Success: true, Timestamp: timestamp(now)})
			if !bytes.Equal(got, want) {
				t.Errorf("envelope(%v, %q):\n got %s\nwant %s", has, m, got, want)
			}
		}
	}
	e := echo.New()
	e.JSONSerializer = jsonSerializer{}
	for _, target := range []string{"/x", "/x?pretty"} {
		rec := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest(http.MethodGet, target, nil), rec)
		if err := okEncoded(c, checkJSON(true), "m"); err != nil {
			t.Fatal(err)
		}
		if rec.Code != 200 || rec.Header().Get("Content-Type") != echo.MIMEApplicationJSON {
			t.Fatalf("%s: %d %q", target, rec.Code, rec.Header().Get("Content-Type"))
		}
		var got envelope
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Message != "m" || got.Code != 200 || !got.Success {
			t.Fatalf("%s: %s (%v)", target, rec.Body, err)
		}
		if indented := strings.Contains(rec.Body.String(), "\n  "); indented != strings.Contains(target, "pretty") {
			t.Errorf("%s: indented %v: %s", target, indented, rec.Body)
		}
	}
}
