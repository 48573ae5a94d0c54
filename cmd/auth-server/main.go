// Command auth-server runs the auth authorization service.
//
//	auth-server            start the server (the default)
//	auth-server serve      start the server
//	auth-server migrate    apply database migrations and exit
//	auth-server version    print the version
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
		fmt.Fprintln(os.Stderr, "auth-server:", err)
		os.Exit(1)
	}
}
