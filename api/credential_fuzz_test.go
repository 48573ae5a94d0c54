package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/ourway/auth/policy"
)

// FuzzCredential: the Authorization header parser never panics, accepts
// exactly one header "Bearer <UUID4>" (any case of scheme and key, any
// whitespace around), and refuses everything else with one of the gate's
// fixed messages: 401, or 400 for a token that is neither a JWT nor a UUID4
// and for several Authorization headers.
func FuzzCredential(f *testing.F) {
	for _, s := range []string{
		"", " ", "Bearer", "Bearer ", "Bearer " + keyA, "bearer " + strings.ToUpper(keyA), "BEARER\t" + keyA,
		"  Bearer   " + keyA + "  ", "Basic " + keyA, "Bearer " + keyA + " x", "Bearer a.b.c", "Bearer ..",
		"Bearer 0f3c6a2e-1b7d-3c59-9e0a-6d2f8b1c3a47", "Bearer 0f3c6a2e1b7d4c599e0a6d2f8b1c3a47",
		"Bearer\u00a0" + keyA, "Bearer " + keyA + "\x00", "Token " + keyA,
	} {
		f.Add(s, true, "")
	}
	f.Add("", false, "")
	f.Add("Bearer "+keyA, true, "Bearer a.b.c")
	f.Add("Bearer "+keyA, true, "Bearer "+keyA)
	f.Fuzz(func(t *testing.T, v string, present bool, second string) {
		h := http.Header{}
		if present {
			h["Authorization"] = []string{v}
			if second != "" {
				h["Authorization"] = append(h["Authorization"], second)
			}
		}
		key, reason, err := credential(h)
		fields := strings.Fields(v)
		if len(h["Authorization"]) > 1 {
			// Two headers: refused, whatever they hold.
			var ae *Error
			if err == nil || key != "" || reason != "duplicate_header" || !errors.As(err, &ae) ||
				ae.Code != http.StatusBadRequest || ae.Message != msgDupHeader {
				t.Fatalf("two headers %q, %q: key %q, reason %q, err %v", v, second, key, reason, err)
			}
			return
		}
		if err == nil {
			if !present || reason != "" {
				t.Fatalf("accepted %q (present %v) with reason %q", v, present, reason)
			}
			if len(fields) != 2 || !strings.EqualFold(fields[0], "bearer") {
				t.Fatalf("accepted %q: not \"Bearer <token>\"", v)
			}
			want, perr := policy.ParseClientKey(fields[1])
			if perr != nil || key != want {
				t.Fatalf("accepted %q as %q; ParseClientKey = %q, %v", v, key, want, perr)
			}
			return
		}
		if key != "" {
			t.Fatalf("refused %q but returned key %q", v, key)
		}
		var ae *Error
		if !errors.As(err, &ae) {
			t.Fatalf("refused %q with %T %v, want *Error", v, err, err)
		}
		wantMsg := map[string]string{
			"missing_header": msgMissingHeader, "bad_header": msgBadHeader, "bad_token": msgBadToken, "bad_key": msgBadKey,
		}[reason]
		wantCode := http.StatusUnauthorized
		if reason == "bad_key" {
			wantCode = http.StatusBadRequest
		}
		if wantMsg == "" || ae.Message != wantMsg || ae.Code != wantCode {
			t.Fatalf("refused %q: reason %q, %d %q", v, reason, ae.Code, ae.Message)
		}
		switch {
		case !present:
			if reason != "missing_header" {
				t.Fatalf("no header: reason %q", reason)
			}
		case len(fields) == 2 && strings.EqualFold(fields[0], "bearer"):
			if _, perr := policy.ParseClientKey(fields[1]); perr == nil {
				t.Fatalf("refused a valid client key: %q (%s)", v, reason)
			}
			if strings.Count(fields[1], ".") == 2 && reason != "bad_token" {
				t.Fatalf("%q is shaped like a JWT: reason %q, want bad_token", v, reason)
			}
		default:
			if reason != "bad_header" {
				t.Fatalf("%q is not \"Bearer <token>\": reason %q, want bad_header", v, reason)
			}
		}
	})
}
