package main

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/schedule"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/settings"
	"github.com/ourway/auth/webhook"
	"github.com/ourway/auth/workflow"
	"github.com/ourway/auth/workflow/workflowdb"
)

// workflows is the workflow side of the server: the answers of the v1
// workflow routes, the registry of the v2 ones, and the dispatcher that
// runs the registered workflows on the shared scheduler.
type workflows struct {
	service    *workflow.Service
	registry   *workflow.Registry
	dispatcher *workflow.Dispatcher
}

// webhookOutcomes are the outcomes counted by auth_webhook_deliveries_total.
var webhookOutcomes = []string{"delivered", "failed", "refused", "retried"}

// newWorkflows builds the workflow side over db, asking svc who may run a
// workflow and recording the answers in decisions.
func newWorkflows(cfg settings.Config, db *sqldb.DB, svc *policy.Service, decisions *decision.Log,
	sched *schedule.Scheduler, mx *metrics.Metrics, log *slog.Logger) (workflows, error) {
	store := workflowdb.New(db)
	if keys := cfg.Crypto.Keyring(); keys != nil {
		store = store.WithEncryption(keys)
	}
	service := workflow.New(svc, decisions).WithRegistry(store)
	counts := map[string]*atomic.Uint64{}
	for _, o := range webhookOutcomes {
		n := &atomic.Uint64{}
		counts[o] = n
		mx.CounterFuncWith("auth_webhook_deliveries_total", "Workflow webhook deliveries by outcome (retried: an attempt that will be tried again).",
			map[string]string{"outcome": o}, func() float64 { return float64(n.Load()) })
	}
	guard := webhook.NewGuard(cfg.Webhooks.Hosts(), nil)
	sender := webhook.NewSender(webhook.SenderOptions{Guard: guard, Timeout: cfg.Webhooks.Timeout,
		Attempts: cfg.Webhooks.Attempts, Observe: func(outcome string) {
			if n := counts[outcome]; n != nil {
				n.Add(1)
			}
		}})
	g, err := sched.Gocron()
	if err != nil {
		return workflows{}, err
	}
	disp, err := workflow.NewDispatcher(store, service, sender, workflow.DispatcherOptions{
		Gocron: g, SyncInterval: cfg.Workflows.SyncInterval, Lease: cfg.Workflows.Lease,
		StopTimeout: runStopTimeout(cfg.Server.ShutdownTimeout), Logger: log,
	})
	if err != nil {
		return workflows{}, err
	}
	reg := workflow.NewRegistry(store, svc, disp, workflow.RegistryOptions{
		MinInterval: cfg.Workflows.MinInterval, URLs: guard, ValidPermission: svc.ValidCheck,
	})
	return workflows{service: service, registry: reg, dispatcher: disp}, nil
}

// runStopTimeout is how long a workflow run under way may go on once the
// server stops: within the scheduler's stop timeout (the shutdown
// timeout), with a second left to record it as interrupted.
func runStopTimeout(shutdown time.Duration) time.Duration {
	return max(shutdown-time.Second, time.Second)
}
