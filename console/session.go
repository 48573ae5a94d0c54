package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/policy"
)

// Cookies of the console, scoped to Prefix.
const (
	// CookieSession holds the session's token.
	CookieSession = "auth_console"
	// cookieRevision holds the highest revision this browser's changes
	// made: every page reads at least at it (read-your-writes behind a load
	// balancer, whichever replica answers).
	cookieRevision = "auth_console_rev"
)

// HeaderCSRF carries the CSRF token of a change made by script (htmx).
const HeaderCSRF = "X-CSRF-Token"

// fieldCSRF carries the CSRF token of a change made by a plain form.
const fieldCSRF = "csrf"

// csp forbids inline script and style, and everything not from the
// console's own origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// session is the signed-in visitor of a request.
type session struct {
	token string
	api.Identity
	csrf string
	// need is the revision the visitor's own changes reached (0: none).
	need int64
}

// serve is the console's frame: request facts for the audit trail, the
// security headers, the body limit, and panic recovery.
func (c *Console) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	r, id := c.deps.Gate.WithRequestFacts(r)
	h.Set("X-Request-ID", id)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			c.log.ErrorContext(r.Context(), "console: panic", "panic", v, "path", r.URL.Path, "request_id", id)
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		}
	}()
	c.mux.ServeHTTP(w, r)
}

// csrfFor is the CSRF token of a session: a MAC of its token, so that it
// changes with every sign-in and only the server can make it.
func (c *Console) csrfFor(token string) string {
	m := hmac.New(sha256.New, c.cfg.Secret)
	m.Write([]byte("auth console csrf\x00"))
	m.Write([]byte(token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// errNoSession is the error of a request without a valid session.
var errNoSession = errors.New("console: no session")

// sessionOf returns the request's session, checked by the API's gate (a
// revoked key or an expired token ends it).
func (c *Console) sessionOf(r *http.Request) (*session, error) {
	ck, err := r.Cookie(CookieSession)
	if err != nil || ck.Value == "" {
		return nil, errNoSession
	}
	id, err := c.deps.Gate.Authenticate(r, ck.Value)
	if err != nil {
		return nil, err
	}
	s := &session{token: ck.Value, Identity: id, csrf: c.csrfFor(ck.Value)}
	if rc, err := r.Cookie(cookieRevision); err == nil {
		s.need, _ = strconv.ParseInt(rc.Value, 10, 64)
	}
	return s, nil
}

// setSession sets (token != "") or clears the session's cookie. The
// revision of the previous session's changes is forgotten either way.
func setSession(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	maxAge := -1
	if token != "" {
		maxAge = max(1, int(time.Until(expires)/time.Second))
	}
	http.SetCookie(w, &http.Cookie{Name: CookieSession, Value: token, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: cookieRevision, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// noteRevision remembers, for the pages that follow, the revision a change
// reached.
func noteRevision(w http.ResponseWriter, r *http.Request, s *session, rev int64) {
	if rev <= s.need {
		return
	}
	s.need = rev
	http.SetCookie(w, &http.Cookie{Name: cookieRevision, Value: strconv.FormatInt(rev, 10), Path: Prefix,
		MaxAge: max(1, int(time.Until(s.Expires)/time.Second)), HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode})
}

// sameOrigin reports whether a POST may be acted on: a browser that names
// the request's origin (Sec-Fetch-Site, else Origin) must name this one.
// Under the pages' Referrer-Policy no-referrer a browser sends "Origin:
// null" with its same-origin POSTs, so Sec-Fetch-Site decides when it is
// there; without it, a null Origin is refused (a sandboxed frame sends it).
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// validCSRF reports whether the POST r carries s's CSRF token, in its
// header or in its form.
func validCSRF(r *http.Request, s *session) bool {
	for _, got := range []string{r.Header.Get(HeaderCSRF), r.PostFormValue(fieldCSRF)} {
		if got != "" && hmac.Equal([]byte(got), []byte(s.csrf)) {
			return true
		}
	}
	return false
}

// signInPage shows the sign-in form.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if s, err := c.sessionOf(r); err == nil && s != nil {
		redirect(w, r, Prefix+"/roles")
		return
	}
	c.renderView(w, r, http.StatusOK, "signin", view{Title: "Sign in", Data: map[string]any{"Ended": r.URL.Query().Get("ended") != ""}}, "")
}

// signIn exchanges a client key or a token for a session.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		c.fail(w, r, nil, http.StatusForbidden, "This sign-in did not come from the console's own page.")
		return
	}
	cred := strings.TrimSpace(r.PostFormValue("credential"))
	if cred == "" {
		c.renderView(w, r, http.StatusBadRequest, "signin", view{Title: "Sign in", Data: map[string]any{"Error": "Enter a client key or a token."}}, "")
		return
	}
	sess, err := c.deps.Gate.OpenSession(r, cred, c.cfg.SessionTTL)
	if err != nil {
		code, msg := api.ErrorStatus(err)
		if errors.Is(err, policy.ErrKeyInGrace) || errors.Is(err, api.ErrNoTokens) {
			code = http.StatusUnauthorized
		}
		c.renderView(w, r, code, "signin", view{Title: "Sign in", Data: map[string]any{"Error": msg}}, "")
		return
	}
	setSession(w, r, sess.Token, sess.Expires)
	c.log.InfoContext(r.Context(), "console sign-in", "read_only", sess.ReadOnly)
	redirect(w, r, Prefix+"/roles")
}

// signOut ends the session: its cookies are cleared.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	s, err := c.sessionOf(r)
	if err == nil && (!sameOrigin(r) || !validCSRF(r, s)) {
		c.fail(w, r, s, http.StatusForbidden, msgCSRF)
		return
	}
	setSession(w, r, "", time.Time{})
	redirect(w, r, Prefix+"/signin")
}

// msgCSRF is the answer to a change without its CSRF token.
const msgCSRF = "This change did not come from a console page of this session (its CSRF token is missing or wrong); nothing was changed. Reload the page and try again."

// page wraps a page's handler: the visitor must be signed in (else to the
// sign-in page), and the view counts against the tenant's rate limit.
func (c *Console) page(h func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.signedIn(w, r)
		if !ok {
			return
		}
		if err := c.deps.Gate.AdmitRead(r, s.Tenant); err != nil {
			code, msg := api.ErrorStatus(err)
			c.fail(w, r, s, code, msg)
			return
		}
		h(w, r, s)
	}
}

// change wraps a change's handler: signed in, from this origin, with the
// session's CSRF token, and a session that may change the policy.
func (c *Console) change(h func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.signedIn(w, r)
		if !ok {
			return
		}
		if !sameOrigin(r) || !validCSRF(r, s) {
			c.fail(w, r, s, http.StatusForbidden, msgCSRF)
			return
		}
		if s.ReadOnly {
			c.fail(w, r, s, http.StatusForbidden, "This session is read-only (signed in with a check-only token): it cannot change anything.")
			return
		}
		h(w, r, s)
	}
}

// signedIn returns the request's session, or answers with the way to the
// sign-in page.
func (c *Console) signedIn(w http.ResponseWriter, r *http.Request) (*session, bool) {
	s, err := c.sessionOf(r)
	if err == nil {
		return s, true
	}
	target := Prefix + "/signin"
	if !errors.Is(err, errNoSession) {
		if code, msg := api.ErrorStatus(err); code != http.StatusUnauthorized && code != http.StatusBadRequest {
			// Not the session's fault (the database is down, the client
			// is rate limited): it stays.
			c.fail(w, r, nil, code, msg)
			return nil, false
		}
		// The session ended (expired, or its key revoked).
		setSession(w, r, "", time.Time{})
		target += "?ended=1"
	}
	redirect(w, r, target)
	return nil, false
}
