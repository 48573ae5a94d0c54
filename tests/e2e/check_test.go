package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// tsMark stands for the timestamp in expected envelope bodies.
const tsMark = "<TS>"

var tsRE = regexp.MustCompile(`"timestamp":"([^"]*)"`)

// checkTimestamp checks that ts is an RFC 3339 UTC time close to now.
func checkTimestamp(t testing.TB, r response, ts string) {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t.Errorf("%s %s: timestamp %q is not RFC 3339: %v", r.method, r.path, ts, err)
		return
	}
	if !strings.HasSuffix(ts, "Z") {
		t.Errorf("%s %s: timestamp %q is not in UTC (want a Z suffix)", r.method, r.path, ts)
	}
	if d := time.Since(tm); d < -5*time.Minute || d > 5*time.Minute {
		t.Errorf("%s %s: timestamp %q is %v away from now", r.method, r.path, ts, d)
	}
}

// checkJSONType checks that the response is application/json.
func checkJSONType(t testing.TB, r response) {
	t.Helper()
	ct := r.header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		t.Errorf("%s %s: Content-Type = %q, want application/json", r.method, r.path, ct)
	}
}

// normalized returns the body without its trailing newline and with the
// timestamp (checked) replaced by tsMark.
func normalized(t testing.TB, r response) string {
	t.Helper()
	checkJSONType(t, r)
	body := string(r.body)
	if !strings.HasSuffix(body, "\n") {
		t.Errorf("%s %s: body %q does not end with a newline", r.method, r.path, body)
	}
	body = strings.TrimSuffix(body, "\n")
	if m := tsRE.FindStringSubmatch(body); m != nil {
		checkTimestamp(t, r, m[1])
		body = strings.Replace(body, m[0], `"timestamp":"`+tsMark+`"`, 1)
	}
	return body
}

// expect checks status and the exact body (raw bytes, so key order and
// compactness count; timestamps as tsMark).
func expect(t testing.TB, r response, status int, want string) {
	t.Helper()
	got := normalized(t, r)
	if r.status != status || got != want {
		t.Errorf("%s %s:\n got: %d %s\nwant: %d %s", r.method, r.path, r.status, got, status, want)
	}
}

// res is the bare {"result": v} body.
func res(v string) string { return `{"result":` + v + `}` }

// env is the success envelope with data (raw JSON) and message.
func env(data, msg string) string {
	m, _ := json.Marshal(msg)
	return `{"code":200,"data":` + data + `,"message":` + string(m) + `,"success":true,"timestamp":"` + tsMark + `"}`
}

// topKeys returns the keys of a JSON object in the order they appear.
func topKeys(b []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

var errorKeys = []string{"code", "details", "message", "success", "timestamp"}

// expectError checks an error response: the status, the JSON error body
// {"code","details":{},"message","success":false,"timestamp"} in that key
// order, and the message.
func expectError(t testing.TB, r response, status int, msg string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s %s: status = %d, want %d (body %s)", r.method, r.path, r.status, status, r.body)
	}
	checkJSONType(t, r)
	keys, err := topKeys(r.body)
	if err != nil || !slices.Equal(keys, errorKeys) {
		t.Errorf("%s %s: error body keys = %v (%v), want %v; body %s", r.method, r.path, keys, err, errorKeys, r.body)
		return
	}
	var b struct {
		Code      int             `json:"code"`
		Details   json.RawMessage `json:"details"`
		Message   string          `json:"message"`
		Success   *bool           `json:"success"`
		Timestamp string          `json:"timestamp"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Errorf("%s %s: error body: %v; body %s", r.method, r.path, err, r.body)
		return
	}
	if b.Code != status {
		t.Errorf("%s %s: body code = %d, want %d", r.method, r.path, b.Code, status)
	}
	if string(b.Details) != "{}" {
		t.Errorf("%s %s: details = %s, want {}", r.method, r.path, b.Details)
	}
	if msg != "" && b.Message != msg {
		t.Errorf("%s %s: message:\n got: %q\nwant: %q", r.method, r.path, b.Message, msg)
	}
	if b.Message == "" {
		t.Errorf("%s %s: empty error message", r.method, r.path)
	}
	if b.Success == nil || *b.Success {
		t.Errorf("%s %s: success = %v, want false", r.method, r.path, b.Success)
	}
	checkTimestamp(t, r, b.Timestamp)
}

// decode unmarshals a 200 response body into v.
func decode(t testing.TB, r response, v any) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("%s %s: status %d, want 200: %s", r.method, r.path, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s %s: decode %s: %v", r.method, r.path, r.body, err)
	}
}

// Typed views of the success shapes.
type (
	bareBool struct {
		Result *bool `json:"result"`
	}
	membership struct {
		Role string `json:"role"`
		User string `json:"user"`
	}
	checkEnvelope struct {
		Data struct {
			HasPermission *bool `json:"has_permission"`
		} `json:"data"`
	}
)

// boolResult returns {"result": bool} of a 200 response.
func boolResult(t testing.TB, r response) bool {
	t.Helper()
	var b bareBool
	decode(t, r, &b)
	if b.Result == nil {
		t.Fatalf("%s %s: no boolean result in %s", r.method, r.path, r.body)
	}
	return *b.Result
}

// hasPermission returns data.has_permission of a check envelope.
func hasPermission(t testing.TB, r response) bool {
	t.Helper()
	var b checkEnvelope
	decode(t, r, &b)
	if b.Data.HasPermission == nil {
		t.Fatalf("%s %s: no data.has_permission in %s", r.method, r.path, r.body)
	}
	return *b.Data.HasPermission
}

// mustResult checks a write's {"result": …}.
func mustResult(t testing.TB, r response, want bool) {
	t.Helper()
	if got := boolResult(t, r); got != want {
		t.Errorf("%s %s: result = %v, want %v", r.method, r.path, got, want)
	}
}

// resultField lists one field of the objects in a {"result":[…]} body.
func resultField(t testing.TB, r response, field string) []string {
	t.Helper()
	var b struct {
		Result []map[string]any `json:"result"`
	}
	decode(t, r, &b)
	if b.Result == nil {
		t.Fatalf("%s %s: result is not a list: %s", r.method, r.path, r.body)
	}
	out := []string{}
	for _, o := range b.Result {
		s, _ := o[field].(string)
		out = append(out, s)
	}
	return out
}

// memberships returns the {"role","user"} list of a bare result.
func memberships(t testing.TB, r response) []membership {
	t.Helper()
	var b struct {
		Result []membership `json:"result"`
	}
	decode(t, r, &b)
	if b.Result == nil {
		t.Fatalf("%s %s: result is not a list: %s", r.method, r.path, r.body)
	}
	return b.Result
}

// permissionNames returns data.permissions[*].name and data.count of a
// user_permissions envelope.
func permissionNames(t testing.TB, r response) ([]string, int) {
	t.Helper()
	var b struct {
		Data struct {
			Count       *int                    `json:"count"`
			Permissions []struct{ Name string } `json:"permissions"`
		} `json:"data"`
	}
	decode(t, r, &b)
	if b.Data.Count == nil || b.Data.Permissions == nil {
		t.Fatalf("%s %s: not a user_permissions envelope: %s", r.method, r.path, r.body)
	}
	out := []string{}
	for _, p := range b.Data.Permissions {
		out = append(out, p.Name)
	}
	return out, *b.Data.Count
}

// rolePermissionNames returns data[*].name of a role_permissions envelope.
func rolePermissionNames(t testing.TB, r response) []string {
	t.Helper()
	var b struct {
		Data []struct{ Name string } `json:"data"`
	}
	decode(t, r, &b)
	if b.Data == nil {
		t.Fatalf("%s %s: data is not a list: %s", r.method, r.path, r.body)
	}
	out := []string{}
	for _, p := range b.Data {
		out = append(out, p.Name)
	}
	return out
}

// sameList compares lists in order.
func sameList(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got: %q\nwant: %q", what, got, want)
	}
}

// sameSet compares lists ignoring order (duplicates count).
func sameSet(t testing.TB, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	sort.Strings(g)
	sort.Strings(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s (any order):\n got: %q\nwant: %q", what, g, w)
	}
}

// containsAll checks that got holds every item of want.
func containsAll(t testing.TB, what string, got []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s = %q, want it to contain %q", what, got, w)
		}
	}
}
