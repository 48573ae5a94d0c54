// Command casbintool is a stock Casbin program, as users write them, run by
// the end-to-end tests against auth-server's database: casbin with
// gorm-adapter's defaults (AutoMigrate on), or with
// gormadapter.TurnOffAutoMigrate when -no-migrate is given.
//
//	casbintool -type sqlite|postgresql -dsn DSN -model model.conf [-no-migrate] load
//	casbintool ... add SUB DOM OBJ [SUB DOM OBJ ...]   (one AddPolicies call)
//	casbintool ... remove SUB DOM OBJ                   (RemovePolicy)
//	casbintool ... add-member USER ROLE DOM             (AddGroupingPolicy)
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/casbin/casbin/v3"
	gormadapter "github.com/casbin/gorm-adapter/v3"
	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "casbintool:", err)
		os.Exit(1)
	}
}

func run() error {
	dbType := flag.String("type", "sqlite", "sqlite or postgresql")
	dsn := flag.String("dsn", "", "database DSN (SQLite: a file name)")
	modelPath := flag.String("model", "model.conf", "Casbin model")
	noMigrate := flag.Bool("no-migrate", false, "gormadapter.TurnOffAutoMigrate")
	flag.Parse()
	var dial gorm.Dialector
	switch *dbType {
	case "sqlite":
		dial = sqlite.Open(*dsn)
	case "postgresql":
		dial = postgres.Open(*dsn)
	default:
		return fmt.Errorf("unknown -type %q", *dbType)
	}
	db, err := gorm.Open(dial, &gorm.Config{})
	if err != nil {
		return err
	}
	if *noMigrate {
		gormadapter.TurnOffAutoMigrate(db)
	}
	a, err := gormadapter.NewAdapterByDB(db)
	if err != nil {
		return err
	}
	e, err := casbin.NewEnforcer(*modelPath, a)
	if err != nil {
		return err
	}
	args := flag.Args()
	if len(args) == 0 {
		return errors.New("no command")
	}
	switch cmd, rest := args[0], args[1:]; {
	case cmd == "load" && len(rest) == 0:
		return nil
	case cmd == "add" && len(rest) > 0 && len(rest)%3 == 0:
		var rules [][]string
		for i := 0; i < len(rest); i += 3 {
			rules = append(rules, rest[i:i+3])
		}
		ok, err := e.AddPolicies(rules)
		if err == nil && !ok {
			err = errors.New("AddPolicies: not added")
		}
		return err
	case cmd == "remove" && len(rest) == 3:
		ok, err := e.RemovePolicy(rest[0], rest[1], rest[2])
		if err == nil && !ok {
			err = errors.New("RemovePolicy: not removed")
		}
		return err
	case cmd == "add-member" && len(rest) == 3:
		ok, err := e.AddGroupingPolicy(rest[0], rest[1], rest[2])
		if err == nil && !ok {
			err = errors.New("AddGroupingPolicy: not added")
		}
		return err
	}
	return fmt.Errorf("bad command %q", args)
}
