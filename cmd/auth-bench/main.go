// Command auth-bench measures auth-server and writes docs/benchmarks.md:
// HTTP checks and writes against a bare net/http ceiling, the policy
// core's Go benchmarks, a cold tenant of a million memberships, replica
// propagation, and the admin console's pages on a tenant of 10 000 roles.
// `make bench` runs it; see docs/benchmarks.md for what each figure is.
//
//	go run ./cmd/auth-bench [-out docs/benchmarks.md] [-quick] [-only http,writes] [-postgres URL] [-redis URL]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "auth-bench:", err)
		os.Exit(1)
	}
}
