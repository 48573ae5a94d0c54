package workflow

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
)

// Schedule is when a workflow runs: every interval, anchored at the Unix
// epoch (so that every process computes the same times), or on a cron
// expression (five fields, or six with seconds first; descriptors such as
// @hourly; UTC unless it starts with CRON_TZ=).
type Schedule struct {
	expr  string
	every time.Duration
	cron  gocron.Cron
}

// ErrSchedule is wrapped by every error of ParseSchedule.
var ErrSchedule = errors.New("invalid schedule")

// ScheduleError is a schedule that is not valid, or too frequent for the
// registry; its message is a sentence that says why.
type ScheduleError struct {
	Schedule string
	Message  string
}

func (e *ScheduleError) Error() string { return e.Message }

// Unwrap lets errors.Is(err, ErrSchedule) match.
func (e *ScheduleError) Unwrap() error { return ErrSchedule }

func scheduleErr(s, format string, args ...any) error {
	return &ScheduleError{Schedule: s, Message: "Invalid schedule: " + fmt.Sprintf(format, args...) + "."}
}

// maxSlotSearch bounds how far back Prev looks for a cron slot.
const maxSlotSearch = 400 * 24 * time.Hour

// ParseSchedule parses an interval ("90s", "5m", "1h30m") or a cron
// expression.
func ParseSchedule(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Schedule{}, scheduleErr(s, "a schedule is required (a cron expression such as '*/5 * * * *' or an interval such as '5m')")
	}
	if d, err := time.ParseDuration(s); err == nil {
		return Every(d)
	}
	if !strings.ContainsAny(s, " @") {
		return Schedule{}, scheduleErr(s, "'%s' is neither an interval (such as '5m') nor a cron expression (such as '*/5 * * * *')", s)
	}
	c := gocron.NewDefaultCron(true)
	if err := c.IsValid(s, time.UTC, time.Now()); err != nil {
		return Schedule{}, scheduleErr(s, "'%s' is not a valid cron expression (%s)", s, cronReason(err))
	}
	return Schedule{expr: s, cron: c}, nil
}

// cronReason is the cron parser's own message, without gocron's prefix.
func cronReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "\n"); i >= 0 {
		msg = msg[i+1:]
	}
	return msg
}

// Every returns the schedule of an interval; d must be at least a second
// and a whole number of milliseconds.
func Every(d time.Duration) (Schedule, error) {
	if d < time.Second {
		return Schedule{}, scheduleErr(d.String(), "an interval must be at least 1s, not %s", d)
	}
	if d%time.Millisecond != 0 {
		return Schedule{}, scheduleErr(d.String(), "an interval must be a whole number of milliseconds, not %s", d)
	}
	return Schedule{expr: d.String(), every: d}, nil
}

// String is the schedule as registered.
func (s Schedule) String() string { return s.expr }

// Interval is the interval of an interval schedule (0 for a cron one).
func (s Schedule) Interval() time.Duration { return s.every }

// IsZero reports whether s is the zero Schedule.
func (s Schedule) IsZero() bool { return s.expr == "" }

// Next returns the first time of the schedule strictly after t.
func (s Schedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		return s.Prev(t).Add(s.every)
	}
	return s.cron.Next(t).UTC()
}

// Prev returns the last time of the schedule at or before t (the zero
// time if there is none in the last 400 days).
func (s Schedule) Prev(t time.Time) time.Time {
	t = t.UTC()
	if s.every > 0 {
		n := t.UnixNano()
		slot := n - n%int64(s.every)
		if n < 0 && n%int64(s.every) != 0 {
			slot -= int64(s.every)
		}
		return time.Unix(0, slot).UTC()
	}
	// Cron times are whole seconds: Next(u - 1s) is the first one at or
	// after u. Look back further and further until one is found.
	for back := time.Minute; ; back = min(back*4, maxSlotSearch) {
		var last time.Time
		for next := s.cron.Next(t.Add(-back)); !next.IsZero() && !next.After(t); next = s.cron.Next(next) {
			last = next
		}
		if !last.IsZero() {
			return last.UTC()
		}
		if back == maxSlotSearch {
			return time.Time{}
		}
	}
}

// MinGap is the shortest time between two runs over the next 200 runs
// from now (the interval of an interval schedule).
func (s Schedule) MinGap(now time.Time) time.Duration {
	if s.every > 0 {
		return s.every
	}
	gap := time.Duration(1<<63 - 1)
	t := s.cron.Next(now)
	for range 200 {
		n := s.cron.Next(t)
		if n.IsZero() {
			break
		}
		gap = min(gap, n.Sub(t))
		t = n
	}
	return gap
}

// job is the gocron definition of the schedule and the options that align
// it: an interval job starts at its next epoch-anchored slot.
func (s Schedule) job(now time.Time) (gocron.JobDefinition, []gocron.JobOption) {
	if s.every > 0 {
		return gocron.DurationJob(s.every), []gocron.JobOption{
			gocron.WithStartAt(gocron.WithStartDateTime(s.Next(now))),
		}
	}
	return gocron.CronJob(s.expr, true), nil
}
