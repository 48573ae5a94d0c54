package workflow_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/workflow"
)

// payrollPolicy stands for the policy core (*policy.Service) in this
// example: ana and ben hold run_payroll.
type payrollPolicy struct{}

func (payrollPolicy) HasPermission(_ context.Context, _ policy.KeyHash, user, perm string) (bool, error) {
	return perm == "run_payroll" && (user == "ana" || user == "ben"), nil
}

func (payrollPolicy) WhichUsersCan(_ context.Context, _ policy.KeyHash, perm string) ([]policy.Membership, error) {
	if perm != "run_payroll" {
		return nil, nil
	}
	return []policy.Membership{{User: "ben", Role: "leads"}, {User: "ana", Role: "clerks"}}, nil
}

type discard struct{}

func (discard) RecordDecision(context.Context, audit.Entry, bool) {}

// A program that embeds the service schedules its own workflow checks:
// every five minutes, the callback gets who may run the payroll and what
// changed since the previous run.
func ExampleScheduler() {
	svc := workflow.New(payrollPolicy{}, decision.NewLog(discard{}))
	s, err := workflow.NewScheduler(svc, workflow.SchedulerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	tenant := policy.KeyHash("tenant-handle")
	err = s.Add(workflow.Job{Tenant: tenant, Workflow: "payroll", Permission: "run_payroll",
		Schedule: must(workflow.Every(5 * time.Minute)),
		Func: func(_ context.Context, r workflow.Run) error {
			fmt.Printf("%s may be run by %v (added %v, removed %v)\n", r.Workflow, r.Users, r.Added, r.Removed)
			return nil
		}})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	// Between two scheduled runs, run it now.
	if _, err := s.RunNow(ctx, tenant, "payroll"); err != nil {
		log.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output:
	// payroll may be run by [ana ben] (added [ana ben], removed [])
}

func must(s workflow.Schedule, err error) workflow.Schedule {
	if err != nil {
		log.Fatal(err)
	}
	return s
}
