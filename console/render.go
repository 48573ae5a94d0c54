package console

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/ourway/auth/api"
)

// pageNames are the templates of full pages; each is rendered inside
// layout.html. fragments are rendered alone (htmx swaps).
var pageNames = []string{"signin", "error", "roles", "role", "delete", "matrix", "user", "check", "audit", "workflows"}

var funcs = template.FuncMap{
	"pathEscape": url.PathEscape,
	"query": func(kv ...any) template.URL {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			if s := fmt.Sprint(kv[i+1]); s != "" {
				v.Set(fmt.Sprint(kv[i]), s)
			}
		}
		if len(v) == 0 {
			return ""
		}
		return template.URL("?" + v.Encode())
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, one)
		}
		return fmt.Sprintf("%d %s", n, many)
	},
}

// parsePages parses each page with the layout and the shared fragments.
func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFiles,
			"templates/layout.html", "templates/fragments.html", path.Join("templates", name+".html"))
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// view is what every page's template receives.
type view struct {
	Title    string
	Page     string // the nav entry of the page
	Session  *session
	Data     any
	Notice   string
	Error    string
	ReadOnly bool
	CSRF     string
}

// HXHeaders is the body's hx-headers attribute: the CSRF token every htmx
// request carries.
func (v view) HXHeaders() string {
	if v.Session == nil {
		return ""
	}
	return `{"` + HeaderCSRF + `":"` + v.CSRF + `"}`
}

// renderView writes the page name with status code; fragment, when set,
// is the template rendered alone (with v.Data) instead of the page, for
// htmx to swap in.
func (c *Console) renderView(w http.ResponseWriter, r *http.Request, code int, name string, v view, fragment string) {
	t := c.pages[name]
	if v.Session != nil {
		v.ReadOnly = v.Session.ReadOnly
		v.CSRF = v.Session.csrf
	}
	if v.Title == "" {
		v.Title = strings.ToUpper(name[:1]) + name[1:]
	}
	if v.Page == "" {
		v.Page = name
	}
	if f, ok := takeFlash(w, r); ok && fragment == "" {
		if f.Error {
			v.Error = f.Detail
		} else {
			v.Notice = f.Detail
		}
	}
	if d, ok := v.Data.(map[string]any); ok {
		if e, ok := d["Error"].(string); ok && v.Error == "" {
			v.Error = e
		}
	}
	var buf bytes.Buffer
	tmpl := "layout"
	if fragment != "" {
		tmpl = fragment
	}
	var data any = v
	if fragment != "" {
		data = v.Data
	}
	if err := t.ExecuteTemplate(&buf, tmpl, data); err != nil {
		c.log.ErrorContext(r.Context(), "console: render", "page", name, "err", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail answers an error page with the message (s may be nil).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, code int, msg string) {
	c.renderView(w, r, code, "error", view{Title: http.StatusText(code), Page: "", Session: s, Error: msg}, "")
}

// failErr answers an error page for err, with the API's status and message.
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code, msg := errorStatus(err)
	if code >= 500 {
		c.log.ErrorContext(r.Context(), "console: page failed", "path", r.URL.Path, "err", err)
	}
	c.fail(w, r, s, code, msg)
}

// cookieFlash carries the outcome of a change to the page shown after it.
const cookieFlash = "auth_console_flash"

// maxFlash bounds the message a flash cookie may show (the browser holds
// the cookie; the page never shows more of it).
const maxFlash = 600

// flash is the outcome of a change: a notice, or an error.
type flash struct {
	Error  bool   `json:"e,omitempty"`
	Detail string `json:"m"`
}

// setFlash keeps f for the next page.
func setFlash(w http.ResponseWriter, r *http.Request, f flash) {
	b, _ := json.Marshal(f)
	http.SetCookie(w, &http.Cookie{Name: cookieFlash, Value: base64.RawURLEncoding.EncodeToString(b), Path: Prefix,
		MaxAge: 60, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// takeFlash returns the outcome kept for this page, and forgets it.
func takeFlash(w http.ResponseWriter, r *http.Request) (flash, bool) {
	ck, err := r.Cookie(cookieFlash)
	if err != nil {
		return flash{}, false
	}
	http.SetCookie(w, &http.Cookie{Name: cookieFlash, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	b, err := base64.RawURLEncoding.DecodeString(ck.Value)
	var f flash
	if err != nil || json.Unmarshal(b, &f) != nil {
		return flash{}, false
	}
	if len(f.Detail) > maxFlash {
		f.Detail = f.Detail[:maxFlash]
	}
	return f, true
}

// done ends a change: its outcome (the API's message, or its error) is
// kept for the page back, which the visitor is sent to.
func (c *Console) done(w http.ResponseWriter, r *http.Request, s *session, a answer, err error, back string) {
	if err != nil {
		code, msg := errorStatus(err)
		if code >= 500 {
			c.log.ErrorContext(r.Context(), "console: change failed", "path", r.URL.Path, "err", err)
		}
		setFlash(w, r, flash{Error: true, Detail: msg})
	} else {
		noteRevision(w, r, s, a.Revision)
		setFlash(w, r, flash{Detail: a.Message})
	}
	redirect(w, r, back)
}

// errorStatus is the status and message of err: the API's own for an
// answer of the API, else as the API would answer it.
func errorStatus(err error) (int, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status, ae.Message
	}
	return api.ErrorStatus(err)
}
