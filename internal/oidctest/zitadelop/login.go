package zitadelop

import (
	"context"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// loginPath is where the example storage's clients send users to log in
// (their LoginURL is "/login/username?authRequestID=<id>").
const (
	loginPath         = "/login/"
	loginUsernamePath = "/login/username"
)

// maxLoginSteps bounds the number of HTTP round trips Login makes.
const maxLoginSteps = 10

var loginPage = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html>
<head><meta charset="UTF-8"><title>Login</title></head>
<body>
<form method="post" action="` + loginUsernamePath + `">
<input type="hidden" name="id" value="{{.ID}}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<p class="error">{{.Error}}</p>
<button type="submit">Login</button>
</form>
</body>
</html>
`))

// loginHandler is a minimal username/password login UI for the example
// storage, equivalent to the one in the zitadel/oidc example server
// (example/server/exampleop), without that package's process-global logging.
type loginHandler struct {
	store    *storage.Storage
	callback func(context.Context, string) string
	post     http.Handler
}

func newLoginHandler(store *storage.Storage, callback func(context.Context, string) string, issuer *op.IssuerInterceptor) *loginHandler {
	l := &loginHandler{store: store, callback: callback}
	// The interceptor puts the issuer into the context, which the
	// callback URL builder needs.
	l.post = issuer.HandlerFunc(l.checkLogin)
	return l
}

func (l *loginHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != loginUsernamePath {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet:
		id := r.URL.Query().Get("authRequestID")
		if _, err := l.store.AuthRequestByID(r.Context(), id); err != nil {
			http.Error(w, "unknown auth request", http.StatusBadRequest)
			return
		}
		renderLogin(w, http.StatusOK, id, "")
	case http.MethodPost:
		l.post.ServeHTTP(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (l *loginHandler) checkLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "cannot parse form", http.StatusBadRequest)
		return
	}
	id := r.PostForm.Get("id")
	err := l.store.CheckUsernamePassword(r.PostForm.Get("username"), r.PostForm.Get("password"), id)
	if err != nil {
		renderLogin(w, http.StatusUnauthorized, id, err.Error())
		return
	}
	http.Redirect(w, r, l.callback(r.Context(), id), http.StatusFound)
}

func renderLogin(w http.ResponseWriter, status int, id, errMsg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, struct{ ID, Error string }{id, errMsg})
}

// AuthError is returned by [Provider.Login] when the provider redirected to
// the redirect URI with an OAuth error response.
type AuthError struct {
	Code, Description string
}

func (e *AuthError) Error() string {
	if e.Description == "" {
		return "zitadelop: authorization error: " + e.Code
	}
	return fmt.Sprintf("zitadelop: authorization error: %s: %s", e.Code, e.Description)
}

// Login completes the provider's login UI as the test user.
//
// c is the user agent (typically with a cookie jar) that has just been sent
// to authURL, the provider's authorization URL. Login requests authURL with
// a copy of c that never follows redirects, walks the provider's pages
// (following redirects on the provider and submitting the login form with
// p.Username and p.Password), and returns the URL of the final redirect to the
// redirect URI without requesting it. The redirect URI is the redirect_uri
// parameter of authURL, or p.RedirectURI if authURL has none.
//
// On success the returned URL carries "code" and "state" (the provider does
// not add "iss"). If the provider redirected with an OAuth error
// (e.g. error=login_required for prompt=none) Login returns that URL together
// with an *AuthError. Wrong credentials or unexpected pages yield an error.
func (p *Provider) Login(ctx context.Context, c *http.Client, authURL string) (*url.URL, error) {
	return p.LoginAs(ctx, c, authURL, p.Username, p.Password)
}

// LoginAs is [Provider.Login] with explicit credentials (e.g. to test a
// rejected login).
func (p *Provider) LoginAs(ctx context.Context, c *http.Client, authURL, username, password string) (*url.URL, error) {
	if c == nil {
		c = http.DefaultClient
	}
	start, err := url.Parse(authURL)
	if err != nil {
		return nil, fmt.Errorf("zitadelop: parsing auth URL: %w", err)
	}
	redirect := p.RedirectURI
	if ru := start.Query().Get("redirect_uri"); ru != "" {
		redirect = ru
	}
	redirectURL, err := url.Parse(redirect)
	if err != nil {
		return nil, fmt.Errorf("zitadelop: parsing redirect URI: %w", err)
	}
	issuer, err := url.Parse(p.Issuer)
	if err != nil {
		return nil, fmt.Errorf("zitadelop: parsing issuer: %w", err)
	}

	noFollow := *c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, start.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("zitadelop: %w", err)
	}
	submitted := false
	for range maxLoginSteps {
		resp, err := noFollow.Do(req)
		if err != nil {
			return nil, fmt.Errorf("zitadelop: %s %s: %w", req.Method, req.URL, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyCapture))
		_ = resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("zitadelop: reading %s: %w", req.URL, err)
		}

		if isRedirect(resp.StatusCode) {
			loc, err := resp.Location()
			if err != nil {
				return nil, fmt.Errorf("zitadelop: redirect from %s: %w", req.URL, err)
			}
			if sameEndpoint(loc, redirectURL) {
				q := loc.Query()
				if code := q.Get("error"); code != "" {
					return loc, &AuthError{Code: code, Description: q.Get("error_description")}
				}
				return loc, nil
			}
			if loc.Scheme != issuer.Scheme || loc.Host != issuer.Host {
				return nil, fmt.Errorf("zitadelop: unexpected redirect away from the provider to %s", loc)
			}
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
			if err != nil {
				return nil, fmt.Errorf("zitadelop: %w", err)
			}
			continue
		}

		form, ferr := parseLoginForm(string(body))
		if ferr != nil {
			return nil, fmt.Errorf("zitadelop: unexpected response from %s %s: %s: %s",
				req.Method, req.URL, resp.Status, snippet(body))
		}
		if submitted {
			msg := form.errorText
			if msg == "" {
				msg = resp.Status
			}
			return nil, fmt.Errorf("zitadelop: login rejected: %s", msg)
		}
		action, err := req.URL.Parse(form.action)
		if err != nil {
			return nil, fmt.Errorf("zitadelop: login form action: %w", err)
		}
		values := form.hidden
		values.Set(form.usernameField, username)
		values.Set(form.passwordField, password)
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(values.Encode()))
		if err != nil {
			return nil, fmt.Errorf("zitadelop: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		submitted = true
	}
	return nil, fmt.Errorf("zitadelop: no redirect to %s after %d requests", redirect, maxLoginSteps)
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

func sameEndpoint(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && a.Host == b.Host && a.Path == b.Path
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

type loginForm struct {
	action                       string
	hidden                       url.Values
	usernameField, passwordField string
	errorText                    string
}

var (
	formRe  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRe = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRe  = regexp.MustCompile(`(?is)([a-z_:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
	errorRe = regexp.MustCompile(`(?is)<p\b[^>]*class="error"[^>]*>(.*?)</p>`)
)

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRe.FindAllStringSubmatch(s, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2] + a[3])
	}
	return m
}

// parseLoginForm finds the first form with a password field in page. It is
// deliberately small: it only has to understand the provider's login pages.
func parseLoginForm(page string) (*loginForm, error) {
	for _, f := range formRe.FindAllStringSubmatch(page, -1) {
		fa := attrs(f[1])
		form := &loginForm{action: fa["action"], hidden: url.Values{}}
		for _, in := range inputRe.FindAllStringSubmatch(f[2], -1) {
			ia := attrs(in[1])
			name := ia["name"]
			if name == "" {
				continue
			}
			switch strings.ToLower(ia["type"]) {
			case "hidden":
				form.hidden.Set(name, ia["value"])
			case "password":
				form.passwordField = name
			case "", "text", "email":
				if form.usernameField == "" {
					form.usernameField = name
				}
			}
		}
		if form.passwordField == "" || form.usernameField == "" {
			continue
		}
		if m := errorRe.FindStringSubmatch(f[2]); m != nil {
			form.errorText = strings.TrimSpace(html.UnescapeString(m[1]))
		}
		return form, nil
	}
	return nil, errors.New("no login form")
}
