package dex

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// maxLoginSteps bounds the HTTP round trips Login makes.
const maxLoginSteps = 10

// ErrInvalidCredentials is returned by [Provider.LoginAs] when Dex shows
// its password form again with "Invalid Email Address and password.".
var ErrInvalidCredentials = errors.New("dex: login rejected: invalid credentials")

// AuthError is returned by [Provider.Login] when Dex redirected to the
// redirect URI with an OAuth error response.
type AuthError struct {
	Code, Description string
}

func (e *AuthError) Error() string {
	if e.Description == "" {
		return "dex: authorization error: " + e.Code
	}
	return fmt.Sprintf("dex: authorization error: %s: %s", e.Code, e.Description)
}

// Login signs the test user in at Dex's password form.
//
// c is the user agent (typically with a cookie jar) that has just been sent
// to authURL, Dex's authorization URL. Login requests authURL with a copy of
// c that never follows redirects, follows Dex's redirects to the password
// connector's form (/dex/auth/local/login?back=&state=...), posts the
// email address and password to it, and returns the URL of the final
// redirect to the redirect URI without requesting it. The redirect URI is
// the redirect_uri parameter of authURL, or p.RedirectURI if it has none.
//
// On success the returned URL carries "code" and "state". A redirect with
// an OAuth error is returned together with an *AuthError; rejected
// credentials yield [ErrInvalidCredentials]; an unexpected page an error
// that quotes its start.
func (p *Provider) Login(ctx context.Context, c *http.Client, authURL string) (*url.URL, error) {
	return p.LoginAs(ctx, c, authURL, p.Email, p.Password)
}

// LoginAs is [Provider.Login] with explicit credentials.
func (p *Provider) LoginAs(ctx context.Context, c *http.Client, authURL, login, password string) (*url.URL, error) {
	if c == nil {
		c = http.DefaultClient
	}
	start, err := url.Parse(authURL)
	if err != nil {
		return nil, fmt.Errorf("dex: parsing auth URL: %w", err)
	}
	redirect := p.RedirectURI
	if ru := start.Query().Get("redirect_uri"); ru != "" {
		redirect = ru
	}
	redirectURL, err := url.Parse(redirect)
	if err != nil {
		return nil, fmt.Errorf("dex: parsing redirect URI: %w", err)
	}
	issuer, err := url.Parse(p.Issuer)
	if err != nil {
		return nil, fmt.Errorf("dex: parsing issuer: %w", err)
	}

	noFollow := *c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, start.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("dex: %w", err)
	}
	submitted := false
	for range maxLoginSteps {
		resp, err := noFollow.Do(req)
		if err != nil {
			return nil, fmt.Errorf("dex: %s %s: %w", req.Method, req.URL.Redacted(), err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyCapture))
		_ = resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("dex: reading %s: %w", req.URL.Redacted(), err)
		}

		if isRedirect(resp.StatusCode) {
			loc, err := resp.Location()
			if err != nil {
				return nil, fmt.Errorf("dex: redirect from %s: %w", req.URL.Redacted(), err)
			}
			if sameEndpoint(loc, redirectURL) {
				q := loc.Query()
				if code := q.Get("error"); code != "" {
					return loc, &AuthError{Code: code, Description: q.Get("error_description")}
				}
				return loc, nil
			}
			if loc.Scheme != issuer.Scheme || loc.Host != issuer.Host {
				return nil, fmt.Errorf("dex: unexpected redirect away from the provider to %s", loc.Redacted())
			}
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
			if err != nil {
				return nil, fmt.Errorf("dex: %w", err)
			}
			continue
		}

		form, ferr := parsePasswordForm(string(body))
		if ferr != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("dex: unexpected response from %s %s: %s: %s",
				req.Method, req.URL.Redacted(), resp.Status, snippet(body))
		}
		if submitted {
			if form.invalid {
				return nil, ErrInvalidCredentials
			}
			return nil, fmt.Errorf("dex: the password form came back after login: %s", snippet(body))
		}
		// Dex's form posts to the page's own URL (action = the request
		// URI, with the auth request id in "state").
		action, err := req.URL.Parse(form.action)
		if err != nil {
			return nil, fmt.Errorf("dex: login form action: %w", err)
		}
		values := url.Values{"login": {login}, "password": {password}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(values.Encode()))
		if err != nil {
			return nil, fmt.Errorf("dex: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		submitted = true
	}
	return nil, fmt.Errorf("dex: no redirect to %s after %d requests", redirect, maxLoginSteps)
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

// passwordForm is what Login needs of Dex's password.html.
type passwordForm struct {
	action  string
	invalid bool // the "login-error" box: wrong email or password
}

var (
	formRe    = regexp.MustCompile(`(?is)<form\b[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>`)
	loginRe   = regexp.MustCompile(`(?is)<input\b[^>]*\bname="login"`)
	passRe    = regexp.MustCompile(`(?is)<input\b[^>]*\bname="password"`)
	invalidRe = regexp.MustCompile(`(?is)\bid="login-error"`)
)

// parsePasswordForm finds the form with Dex's "login" and "password"
// fields in page.
func parsePasswordForm(page string) (*passwordForm, error) {
	for _, f := range formRe.FindAllStringSubmatch(page, -1) {
		if loginRe.MatchString(f[2]) && passRe.MatchString(f[2]) {
			return &passwordForm{action: html.UnescapeString(f[1]), invalid: invalidRe.MatchString(f[2])}, nil
		}
	}
	return nil, errors.New("no password form")
}
