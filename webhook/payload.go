package webhook

import (
	"encoding/json"
	"time"
)

// Payload is the body of a delivery: who may run the workflow after a run,
// and who was added or removed since the previous completed run.
type Payload struct {
	Added    []string  `json:"added"`    // users who may run it now and could not before
	Removed  []string  `json:"removed"`  // users who could run it before and may not now
	Users    []string  `json:"users"`    // every user who may run it, sorted
	At       time.Time `json:"at"`       // when the run finished
	RunID    string    `json:"run_id"`   // the run's id, also sent as HeaderID
	Workflow string    `json:"workflow"` // the workflow's name
}

// wirePayload fixes the encoded key order (sorted) and the encoding of
// each field.
type wirePayload struct {
	Added    []string `json:"added"`
	At       string   `json:"at"`
	Removed  []string `json:"removed"`
	RunID    string   `json:"run_id"`
	Users    []string `json:"users"`
	Workflow string   `json:"workflow"`
}

// MarshalJSON encodes p as compact JSON with its keys sorted (added, at,
// removed, run_id, users, workflow), nil lists as [] and At in UTC as
// RFC 3339 with nanoseconds.
func (p Payload) MarshalJSON() ([]byte, error) {
	return json.Marshal(wirePayload{
		Added:    orEmpty(p.Added),
		At:       p.At.UTC().Format(time.RFC3339Nano),
		Removed:  orEmpty(p.Removed),
		RunID:    p.RunID,
		Users:    orEmpty(p.Users),
		Workflow: p.Workflow,
	})
}

// orEmpty returns s, or an empty list when s is nil.
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
