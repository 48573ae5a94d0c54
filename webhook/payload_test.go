package webhook_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ourway/auth/webhook"
)

func TestPayloadJSON(t *testing.T) {
	at := time.Date(2026, 12, 6, 3, 5, 0, 123456000, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		p    webhook.Payload
		want string
	}{
		{"sorted keys, UTC time", webhook.Payload{Added: []string{"carol"}, Removed: []string{"dave"}, Users: []string{"alice", "carol"}, At: at, RunID: "42", Workflow: "payroll"},
			`{"added":["carol"],"at":"2026-12-06T02:05:00.123456Z","removed":["dave"],"run_id":"42","users":["alice","carol"],"workflow":"payroll"}`},
		{"nil lists as []", webhook.Payload{At: time.Unix(0, 0), RunID: "1", Workflow: "w"},
			`{"added":[],"at":"1970-01-01T00:00:00Z","removed":[],"run_id":"1","users":[],"workflow":"w"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			var back webhook.Payload
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if !back.At.Equal(tt.p.At) || back.RunID != tt.p.RunID || back.Workflow != tt.p.Workflow {
				t.Fatalf("round trip: got %+v, want %+v", back, tt.p)
			}
		})
	}
}
