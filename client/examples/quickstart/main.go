// Command quickstart is the Python project's quick start with the Go client:
// it creates the role admin, grants it manage_users, makes john_doe a member
// and asks whether john_doe may manage users.
//
//	go run . [SERVICE_URL [CLIENT_KEY]]
//
// SERVICE_URL defaults to http://localhost:4000, CLIENT_KEY to
// 3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d. It exits 0 when the answer is yes,
// 2 when it is no and 1 when there is no answer.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/ourway/auth/client"
)

func main() {
	url, key := "http://localhost:4000", "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	if len(os.Args) > 2 {
		key = os.Args[2] // a client key, or a bearer token
	}
	c, err := client.New(client.Options{BaseURL: url, Token: key})
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
	switch {
	case errors.Is(err, client.ErrUnavailable):
		log.Fatal("no decision, the service is unavailable: deny") // fail closed
	case err != nil:
		log.Fatal("no decision: ", err)
	}
	fmt.Println("john_doe may manage users:", allowed)
	if !allowed {
		os.Exit(2)
	}
}
