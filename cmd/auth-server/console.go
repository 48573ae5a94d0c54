package main

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/console"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/settings"
)

// withConsole returns the API's handler with the admin console served
// beside it under /console (AUTH_CONSOLE=false: the API's handler alone).
func withConsole(cfg settings.Config, srv *api.Server, tokens *api.TokenConfig, svc *policy.Service,
	decisions *decision.Log, trail *audit.Trail, auditStore *auditdb.Store, log *slog.Logger) (http.Handler, error) {
	if !cfg.Console.Enabled {
		return srv.Handler(), nil
	}
	// Replicas share the token secret, so they share the CSRF key made
	// from it (and a session opened on one is valid on all).
	secret := sha256.Sum256(append([]byte("auth console csrf key\x00"), tokens.Secret...))
	c, err := console.New(console.Config{SessionTTL: cfg.Console.SessionTTL, Secret: secret[:]}, console.Deps{
		Gate:      srv,
		API:       srv.Handler(),
		Directory: svc,
		Recorder:  decisions,
		Chain:     chainVerifier{trail: trail, store: auditStore},
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	return consoleMux(srv.Handler(), c.Handler()), nil
}

// consoleMux sends /console and what is under it to the console, the rest
// to the API.
func consoleMux(apiHandler, consoleHandler http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == console.Prefix || strings.HasPrefix(p, console.Prefix+"/") {
			consoleHandler.ServeHTTP(w, r)
			return
		}
		apiHandler.ServeHTTP(w, r)
	})
}

// chainVerifier verifies a tenant's audit chain for the console.
type chainVerifier struct {
	trail *audit.Trail
	store *auditdb.Store
}

// VerifyChain verifies the chain of tenant's records, answering how many
// it holds.
func (v chainVerifier) VerifyChain(ctx context.Context, tenant policy.KeyHash) (int64, error) {
	return v.store.Verify(ctx, v.trail.Fingerprint(string(tenant)))
}
