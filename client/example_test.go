package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/ourway/auth/client"
)

// The quick start of the original project: create a role, grant it a
// permission, add a member, and check. AUTH_URL is where the service is
// (such as http://localhost:4000) and AUTH_KEY the tenant's client key.
func Example() {
	c, err := client.New(client.Options{
		BaseURL: os.Getenv("AUTH_URL"),
		Token:   os.Getenv("AUTH_KEY"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := c.CreateRole(ctx, "admin"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.AddPermission(ctx, "admin", "manage_users"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.AddMembership(ctx, "john_doe", "admin"); err != nil {
		log.Fatal(err)
	}
	allowed, err := c.HasPermission(ctx, "john_doe", "manage_users")
	if err != nil {
		// No decision: fail closed, and tell an outage from a refusal.
		log.Fatal(err)
	}
	fmt.Println("john_doe may manage users:", allowed)
	// Output: john_doe may manage users: true
}

// A failure to reach the service is an error matching ErrUnavailable,
// never a false: the caller decides to fail closed.
func ExampleClient_HasPermission_unavailable() {
	c, err := client.New(client.Options{
		BaseURL:    "http://127.0.0.1:1", // nothing listens there
		Token:      "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
		Timeout:    time.Second,
		MaxRetries: -1,
	})
	if err != nil {
		log.Fatal(err)
	}
	allowed, err := c.HasPermission(context.Background(), "john_doe", "manage_users")
	switch {
	case errors.Is(err, client.ErrUnavailable):
		fmt.Println("no decision: the service is unavailable; denying")
	case err != nil:
		fmt.Println("no decision:", err)
	default:
		fmt.Println("allowed:", allowed)
	}
	// Output: no decision: the service is unavailable; denying
}
