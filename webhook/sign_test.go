package webhook_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/webhook"
)

func TestNewSecret(t *testing.T) {
	a, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two secrets are equal: %s", a)
	}
	raw, ok := strings.CutPrefix(a, "whsec_")
	if !ok {
		t.Fatalf("secret %q lacks the whsec_ prefix", a)
	}
	key, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(key) != 32 {
		t.Fatalf("secret %q: decoded %d bytes, err %v; want 32 bytes", a, len(key), err)
	}
}

// headers returns delivery headers for body signed with secrets at ts.
func headers(secrets []string, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set(webhook.HeaderID, "42")
	h.Set(webhook.HeaderTimestamp, webhook.Timestamp(ts))
	h.Set(webhook.HeaderSignature, webhook.Sign(secrets, ts, body))
	return h
}

func TestSignKnownValue(t *testing.T) {
	// HMAC-SHA256(key "whsec_test", "1700000000.{}"), computed with Python's hmac.
	got := webhook.Sign([]string{"whsec_test"}, time.Unix(1700000000, 0), []byte("{}"))
	if want := "v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if two := webhook.Sign([]string{"a", "", "b"}, time.Unix(1, 0), nil); strings.Count(two, "v1=") != 2 || strings.Count(two, ",") != 1 {
		t.Fatalf("Sign with two secrets (and an empty one) = %q, want two comma-separated entries", two)
	}
	if none := webhook.Sign(nil, time.Unix(1, 0), nil); none != "" {
		t.Fatalf("Sign without secrets = %q, want empty", none)
	}
}

func TestVerify(t *testing.T) {
	const secret, other = "whsec_current", "whsec_other"
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"added":["carol"],"run_id":"42"}`)
	good := func() http.Header { return headers([]string{secret}, now, body) }
	with := func(key, value string) http.Header {
		h := good()
		if value == "" {
			h.Del(key)
		} else {
			h.Set(key, value)
		}
		return h
	}
	tests := []struct {
		name      string
		secret    string
		h         http.Header
		body      []byte
		tolerance time.Duration
		want      error
	}{
		{"valid", secret, good(), body, 0, nil},
		{"tampered body", secret, good(), []byte(`{"added":["mallory"],"run_id":"42"}`), 0, webhook.ErrBadSignature},
		{"wrong secret", other, good(), body, 0, webhook.ErrBadSignature},
		{"empty secret", "", good(), body, 0, webhook.ErrNoSecret},
		{"replay after the default tolerance", secret, headers([]string{secret}, now.Add(-5*time.Minute-time.Second), body), body, 0, webhook.ErrTooOld},
		{"old but within the default tolerance", secret, headers([]string{secret}, now.Add(-5*time.Minute), body), body, 0, nil},
		{"old beyond a custom tolerance", secret, headers([]string{secret}, now.Add(-2*time.Minute), body), body, time.Minute, webhook.ErrTooOld},
		{"future timestamp", secret, headers([]string{secret}, now.Add(6*time.Minute), body), body, 0, webhook.ErrTooNew},
		{"missing timestamp", secret, with(webhook.HeaderTimestamp, ""), body, 0, webhook.ErrMissingHeader},
		{"missing signature", secret, with(webhook.HeaderSignature, ""), body, 0, webhook.ErrMissingHeader},
		{"timestamp not a number", secret, with(webhook.HeaderTimestamp, "soon"), body, 0, webhook.ErrBadTimestamp},
		{"negative timestamp", secret, with(webhook.HeaderTimestamp, "-1"), body, 0, webhook.ErrBadTimestamp},
		{"signed timestamp", secret, with(webhook.HeaderTimestamp, "+"+webhook.Timestamp(now)), body, 0, webhook.ErrBadTimestamp},
		{"timestamp out of range", secret, with(webhook.HeaderTimestamp, "99999999999999999999"), body, 0, webhook.ErrBadTimestamp},
		{"timestamp changed", secret, with(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10)), body, 0, webhook.ErrBadSignature},
		{"unknown scheme only", secret, with(webhook.HeaderSignature, "v0=abcd"), body, 0, webhook.ErrNoSignature},
		{"not hex", secret, with(webhook.HeaderSignature, "v1=zz"), body, 0, webhook.ErrNoSignature},
		{"truncated", secret, with(webhook.HeaderSignature, good().Get(webhook.HeaderSignature)[:40]), body, 0, webhook.ErrNoSignature},
		{"no equals sign", secret, with(webhook.HeaderSignature, "garbage"), body, 0, webhook.ErrNoSignature},
		{"matching entry among others", secret, with(webhook.HeaderSignature, "v0=00, v1=zz, "+good().Get(webhook.HeaderSignature)), body, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.Verify(tt.secret, tt.h, tt.body, now, tt.tolerance)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyRotation(t *testing.T) {
	const current, previous = "whsec_new", "whsec_old"
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{}`)
	h := headers([]string{current, previous}, now, body)
	for _, s := range []string{current, previous} {
		if err := webhook.Verify(s, h, body, now, 0); err != nil {
			t.Errorf("Verify with %s during rotation: %v", s, err)
		}
	}
	if err := webhook.Verify("whsec_unrelated", h, body, now, 0); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("Verify with an unrelated secret = %v, want ErrBadSignature", err)
	}
}

func TestVerifyRequest(t *testing.T) {
	const secret = "whsec_x"
	body := `{"run_id":"1"}`
	tests := []struct {
		name string
		body string
		sign string // the body that is signed
		want error
	}{
		{"authentic", body, body, nil},
		{"tampered", body + " ", body, webhook.ErrBadSignature},
		{"too large", strings.Repeat("a", webhook.MaxBodyBytes+1), "", webhook.ErrBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(tt.body))
			for k, v := range headers([]string{secret}, time.Now(), []byte(tt.sign)) {
				r.Header[k] = v
			}
			got, err := webhook.VerifyRequest(secret, r, 0)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("VerifyRequest = %v, want %v", err, tt.want)
			}
			if err == nil && string(got) != tt.body {
				t.Fatalf("VerifyRequest body = %q, want %q", got, tt.body)
			}
			if err != nil && got != nil {
				t.Fatalf("VerifyRequest returned a body with error %v", err)
			}
		})
	}
}
