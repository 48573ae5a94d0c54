// Command v2 shows API v2 with the Go client: it sets up two roles
// (editor inherits from staff) with five members, explains a decision,
// checks a batch of questions in one request and lists the members of
// editor two per page.
//
//	go run ./client/examples/v2 [SERVICE_URL [CLIENT_KEY]]
//
// SERVICE_URL defaults to $AUTH_URL, then http://localhost:4000; CLIENT_KEY
// to $AUTH_KEY, then 3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d. Every change is
// idempotent, so it can run again on the same tenant. It exits 1 when the
// service gives no answer.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/ourway/auth/client"
)

func main() {
	url := or(os.Getenv("AUTH_URL"), "http://localhost:4000")
	key := or(os.Getenv("AUTH_KEY"), "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	if len(os.Args) > 2 {
		key = os.Args[2]
	}
	c, err := client.New(client.Options{BaseURL: url, Token: key})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, c.V2()); err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) {
			log.Fatalf("no answer: %d %s: %s", ae.StatusCode, ae.Reason, ae.Message)
		}
		log.Fatal("no answer: ", err) // an outage is never a "no"
	}
}

func run(ctx context.Context, v2 *client.V2) error {
	// PUT is idempotent: each call creates, or finds it done already.
	for _, step := range []func() (bool, error){
		func() (bool, error) { return v2.PutRole(ctx, "staff", nil) },
		func() (bool, error) { return v2.PutRole(ctx, "editor", nil) },
		func() (bool, error) { return v2.PutPermission(ctx, "staff", "read") },
		func() (bool, error) { return v2.PutPermission(ctx, "editor", "write") },
		func() (bool, error) { return v2.PutParent(ctx, "editor", "staff") },
	} {
		if _, err := step(); err != nil {
			return err
		}
	}
	for _, user := range []string{"alice", "bob", "carol", "dave", "erin"} {
		if _, err := v2.PutMember(ctx, "editor", user); err != nil {
			return err
		}
	}

	e, err := v2.Explain(ctx, "alice", "read")
	if err != nil {
		return err
	}
	var path []string
	for _, s := range e.Path {
		path = append(path, s.Type+" "+s.Name)
	}
	fmt.Printf("alice may read: %v, through %s\n", e.Allowed, strings.Join(path, " → "))

	results, err := v2.CheckBatch(ctx, []client.Pair{
		{User: "alice", Permission: "read"},
		{User: "alice", Permission: "write"},
		{User: "alice", Permission: "delete"},
		{User: "zoe", Permission: "read"},
	})
	if err != nil {
		return err
	}
	fmt.Println("batch check:")
	for _, r := range results {
		fmt.Printf("  %s %s: %v\n", r.User, r.Permission, r.Allowed)
	}

	fmt.Println("members of editor, two per page:")
	for user, err := range v2.WithPageSize(2).Members(ctx, "editor") {
		if err != nil {
			return err
		}
		fmt.Println("  " + user)
	}
	return nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
