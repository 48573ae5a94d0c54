// Package console is the admin console of auth-server: web pages under
// /console to see and change a tenant's roles, permissions and memberships,
// check a user's access with its explanation, read the audit trail and run
// workflows.
//
// Pages are rendered on the server with html/template from files embedded
// in the binary; htmx (vendored, see static/VENDOR.md) makes links and forms
// update the page in place, and every page works without it. A sign-in with
// a client key or a token opens a short-lived session held in an HttpOnly,
// SameSite=Strict cookie; every change carries a CSRF token; pages carry a
// Content-Security-Policy that forbids inline script and style.
//
// Every change, every check and every read of the audit trail made in the
// console is an in-process request to the HTTP API with the session's token,
// so it passes the same authentication, scope check, rate limit, core and
// audit as the same call made by a client. The other pages read the policy
// core directly and record one listing per page view.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/policy"
)

// Prefix is where the console is served.
const Prefix = "/console"

// DefaultSessionTTL is how long a sign-in lasts unless configured.
const DefaultSessionTTL = 30 * time.Minute

// Config configures the console.
type Config struct {
	// SessionTTL is how long a sign-in lasts (at most the lifetime of the
	// service's tokens, and of the token signed in with).
	SessionTTL time.Duration
	// Secret keys the CSRF tokens; replicas behind one address must share
	// it (the caller derives it from the token secret).
	Secret []byte
}

// Gate authenticates credentials and opens sessions: the API's own gate
// (api.Server).
type Gate interface {
	OpenSession(r *http.Request, credential string, ttl time.Duration) (api.Session, error)
	Authenticate(r *http.Request, credential string) (api.Identity, error)
	AdmitRead(r *http.Request, tenant policy.KeyHash) error
	// WithRequestFacts gives r the facts the audit trail records of a
	// request (id, client address, user agent), as the API gives them.
	WithRequestFacts(r *http.Request) (*http.Request, string)
}

// Directory is what the console reads of a tenant's policy (policy.Service).
type Directory interface {
	ListRoles(ctx context.Context, key policy.KeyHash) ([]policy.Role, error)
	RoleInfo(ctx context.Context, key policy.KeyHash, role string) (policy.RoleInfo, error)
	DirectGrants(ctx context.Context, key policy.KeyHash, role string) ([]policy.Held, error)
	DirectMembers(ctx context.Context, key policy.KeyHash, role string) ([]policy.Held, error)
	DirectParents(ctx context.Context, key policy.KeyHash, role string) ([]string, error)
	ChildRoles(ctx context.Context, key policy.KeyHash, role string) ([]string, error)
	GrantedPermissions(ctx context.Context, key policy.KeyHash) ([]string, error)
	UserRoleTree(ctx context.Context, key policy.KeyHash, user string) ([]policy.UserRole, error)
	UserGrants(ctx context.Context, key policy.KeyHash, user string) ([]policy.HeldPermission, error)
	Explain(ctx context.Context, key policy.KeyHash, user, perm string) (policy.Explanation, error)
}

// Recorder records a page view as the API records the listing it shows
// (decision.Log).
type Recorder interface {
	Listed(ctx context.Context, key policy.KeyHash, q decision.Question)
}

// ChainVerifier verifies a tenant's audit chain, answering how many records
// it holds; an error says the chain is broken or could not be read.
type ChainVerifier interface {
	VerifyChain(ctx context.Context, tenant policy.KeyHash) (int64, error)
}

// Deps are the services behind the console.
type Deps struct {
	Gate Gate
	// API serves the HTTP API: changes, checks, the audit trail and
	// workflows are requests to it.
	API       http.Handler
	Directory Directory
	// Recorder records page views (nil: none are recorded).
	Recorder Recorder
	// Chain verifies audit chains (nil: the audit page shows no status).
	Chain  ChainVerifier
	Logger *slog.Logger
}

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Console serves the admin console.
type Console struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	pages  map[string]*template.Template
	mux    *http.ServeMux
	chains *chainCache
}

// New builds the console.
func New(cfg Config, deps Deps) (*Console, error) {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, deps: deps, log: deps.Logger, pages: pages, mux: http.NewServeMux(), chains: newChainCache()}
	c.routes()
	return c, nil
}

// Handler serves the console's paths (Prefix and below).
func (c *Console) Handler() http.Handler { return http.HandlerFunc(c.serve) }

// routes registers the console's pages.
func (c *Console) routes() {
	static, _ := fs.Sub(staticFiles, "static")
	files := http.StripPrefix(Prefix+"/static/", http.FileServerFS(static))
	c.mux.Handle("GET "+Prefix+"/static/", files)
	c.mux.HandleFunc("GET "+Prefix, c.home)
	c.mux.HandleFunc("GET "+Prefix+"/{$}", c.home)
	c.mux.HandleFunc("GET "+Prefix+"/signin", c.signInPage)
	c.mux.HandleFunc("POST "+Prefix+"/signin", c.signIn)
	c.mux.HandleFunc("POST "+Prefix+"/signout", c.signOut)

	c.mux.HandleFunc("GET "+Prefix+"/roles", c.page(c.rolesPage))
	c.mux.HandleFunc("POST "+Prefix+"/roles", c.change(c.createRole))
	c.mux.HandleFunc("GET "+Prefix+"/roles/{role}", c.page(c.rolePage))
	c.mux.HandleFunc("GET "+Prefix+"/roles/{role}/delete", c.page(c.deletePage))
	c.mux.HandleFunc("POST "+Prefix+"/roles/{role}/delete", c.change(c.deleteRole))
	c.mux.HandleFunc("POST "+Prefix+"/roles/{role}/{kind}/{op}", c.change(c.roleLink))
	c.mux.HandleFunc("GET "+Prefix+"/matrix", c.page(c.matrixPage))
	c.mux.HandleFunc("POST "+Prefix+"/matrix", c.change(c.toggleCell))
	c.mux.HandleFunc("GET "+Prefix+"/users", c.page(c.userPage))
	c.mux.HandleFunc("GET "+Prefix+"/check", c.page(c.checkPage))
	c.mux.HandleFunc("GET "+Prefix+"/audit", c.page(c.auditPage))
	c.mux.HandleFunc("GET "+Prefix+"/workflows", c.page(c.workflowsPage))
	c.mux.HandleFunc("POST "+Prefix+"/workflows/{workflow}/run", c.change(c.runWorkflow))
	c.mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, http.StatusNotFound, msgNoPage)
	})
}

// msgNoPage answers a path the console does not serve.
const msgNoPage = "There is no such page in the console."

// home sends a visitor to the roles, or to the sign-in page.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	redirect(w, r, Prefix+"/roles")
}

// redirect answers 303 to target; an htmx request is told to load it.
func redirect(w http.ResponseWriter, r *http.Request, target string) {
	if r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-Boosted") != "true" {
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
