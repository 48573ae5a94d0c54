package workflow_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/workflow"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Intervals are anchored at the Unix epoch, cron expressions follow their
// fields (seconds optional): every process computes the same slots.
func TestScheduleSlots(t *testing.T) {
	for _, tc := range []struct {
		schedule   string
		now        string
		prev, next string
		gap        time.Duration
	}{
		{"5m", "2026-12-06T10:07:30Z", "2026-12-06T10:05:00Z", "2026-12-06T10:10:00Z", 5 * time.Minute},
		{"5m", "2026-12-06T10:05:00Z", "2026-12-06T10:05:00Z", "2026-12-06T10:10:00Z", 5 * time.Minute},
		{"1s", "2026-12-06T10:00:00.999Z", "2026-12-06T10:00:00Z", "2026-12-06T10:00:01Z", time.Second},
		{"7s", "1970-01-01T00:00:20Z", "1970-01-01T00:00:14Z", "1970-01-01T00:00:21Z", 7 * time.Second},
		{"*/5 * * * *", "2026-12-06T10:07:30Z", "2026-12-06T10:05:00Z", "2026-12-06T10:10:00Z", 5 * time.Minute},
		{"*/10 * * * * *", "2026-12-06T10:07:35Z", "2026-12-06T10:07:30Z", "2026-12-06T10:07:40Z", 10 * time.Second},
		{"0 2 * * *", "2026-12-06T10:00:00Z", "2026-12-06T02:00:00Z", "2026-12-07T02:00:00Z", 24 * time.Hour},
		{"@hourly", "2026-12-06T10:59:59Z", "2026-12-06T10:00:00Z", "2026-12-06T11:00:00Z", time.Hour},
		{"0 0 1 1 *", "2026-12-06T10:00:00Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", 365 * 24 * time.Hour},
	} {
		t.Run(tc.schedule+"@"+tc.now, func(t *testing.T) {
			s, err := workflow.ParseSchedule(tc.schedule)
			if err != nil {
				t.Fatal(err)
			}
			now := at(tc.now)
			if got := s.Prev(now); !got.Equal(at(tc.prev)) {
				t.Errorf("Prev = %v, want %s", got, tc.prev)
			}
			if got := s.Next(now); !got.Equal(at(tc.next)) {
				t.Errorf("Next = %v, want %s", got, tc.next)
			}
			if got := s.MinGap(now); got != tc.gap {
				t.Errorf("MinGap = %v, want %v", got, tc.gap)
			}
		})
	}
}

// A schedule that is neither an interval nor a cron expression is refused
// with a sentence that says why.
func TestScheduleErrors(t *testing.T) {
	for _, tc := range []struct{ schedule, says string }{
		{"", "a schedule is required"},
		{"soon", "neither an interval"},
		{"500ms", "at least 1s"},
		{"1.5ms", "at least 1s"},
		{"1001500us", "whole number of milliseconds"},
		{"61 * * * *", "not a valid cron expression"},
		{"* * *", "not a valid cron expression"},
		{"@fortnightly", "not a valid cron expression"},
	} {
		t.Run(tc.schedule, func(t *testing.T) {
			_, err := workflow.ParseSchedule(tc.schedule)
			var se *workflow.ScheduleError
			if !errors.As(err, &se) || !errors.Is(err, workflow.ErrSchedule) {
				t.Fatalf("error %v, want a ScheduleError", err)
			}
			if !strings.Contains(se.Message, tc.says) || !strings.HasPrefix(se.Message, "Invalid schedule: ") {
				t.Errorf("message %q does not say %q", se.Message, tc.says)
			}
		})
	}
}
