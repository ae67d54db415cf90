package nodeop

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// maxSteps bounds the HTTP round trips of one Login or Logout.
const maxSteps = 12

// maxPage bounds how much of a provider page is read.
const maxPage = 1 << 20

// AuthError is returned by [Provider.Login] when the provider redirected
// back with an OAuth error response.
type AuthError struct {
	Code, Description string
}

func (e *AuthError) Error() string {
	if e.Description == "" {
		return "nodeop: authorization error: " + e.Code
	}
	return fmt.Sprintf("nodeop: authorization error: %s: %s", e.Code, e.Description)
}

// Browser returns a user agent for the provider's pages: it trusts the CA
// and keeps cookies (the provider's interaction and session cookies).
func (p *Provider) Browser(t testing.TB) *http.Client {
	t.Helper()
	c := p.CA.HTTPClient(t)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	c.Jar = jar
	return c
}

// Login completes the provider's login and consent pages as p.Username.
//
// c is the user agent (with a cookie jar that trusts the CA, see
// [Provider.Browser]) about to visit authURL, an authorization URL of the
// provider (with PAR: only client_id and request_uri). Login follows the
// provider's redirects, signs in (the provider accepts any password) and
// confirms consent, and returns the first redirect that leaves the provider
// (the redirect URI with code, state and iss) without requesting it. When
// that redirect carries an OAuth error the URL comes with an *AuthError. A
// page it does not understand (such as the provider's error page) is an
// error quoting the page.
func (p *Provider) Login(ctx context.Context, c *http.Client, authURL string) (*url.URL, error) {
	return p.LoginAs(ctx, c, authURL, p.Username)
}

// LoginAs is [Provider.Login] signing in as username (the token's "sub").
func (p *Provider) LoginAs(ctx context.Context, c *http.Client, authURL, username string) (*url.URL, error) {
	u, _, err := p.walk(ctx, c, authURL, func(f *form) (url.Values, bool) {
		switch {
		case f.password != "":
			v := f.hidden
			v.Set(f.text, username)
			v.Set(f.password, "any-password")
			return v, true
		case f.hidden.Get("prompt") == "consent":
			return f.hidden, true
		}
		return nil, false
	})
	if err != nil {
		return u, err
	}
	if u == nil {
		return nil, fmt.Errorf("nodeop: login ended on the provider's pages")
	}
	q := u.Query()
	if code := q.Get("error"); code != "" {
		return u, &AuthError{Code: code, Description: q.Get("error_description")}
	}
	return u, nil
}

// Logout confirms RP-initiated logout: c (with the provider's session
// cookie) visits endSessionURL, the end_session_endpoint with its query, and
// answers "yes" on the confirmation page. It returns the redirect that leaves
// the provider (the post_logout_redirect_uri with state), or nil when the
// provider showed its own signed-out page instead. Back-channel logout tokens
// have been sent when it returns.
func (p *Provider) Logout(ctx context.Context, c *http.Client, endSessionURL string) (*url.URL, error) {
	u, submitted, err := p.walk(ctx, c, endSessionURL, func(f *form) (url.Values, bool) {
		if f.hidden.Has("xsrf") {
			v := f.hidden
			v.Set("logout", "yes")
			return v, true
		}
		return nil, false
	})
	if err == nil && !submitted {
		return u, fmt.Errorf("nodeop: no logout confirmation page")
	}
	return u, err
}

// walk requests start with c, following redirects within the provider and
// submitting the forms that fill accepts, until a redirect leaves the
// provider (returned) or a page has no form fill accepts (nil URL, or an
// error if no form at all was submitted yet and the page is not a success).
func (p *Provider) walk(ctx context.Context, c *http.Client, start string, fill func(*form) (url.Values, bool)) (*url.URL, bool, error) {
	if c == nil || c.Jar == nil {
		return nil, false, fmt.Errorf("nodeop: the user agent needs a cookie jar (see Provider.Browser)")
	}
	own := map[string]bool{}
	for _, s := range append([]string{p.Issuer}, mapValues(p.MTLSAliases)...) {
		if u, err := url.Parse(s); err == nil {
			own[u.Host] = true
		}
	}
	noFollow := *c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, start, nil)
	if err != nil {
		return nil, false, fmt.Errorf("nodeop: %w", err)
	}
	submitted := false
	for range maxSteps {
		resp, err := noFollow.Do(req)
		if err != nil {
			return nil, submitted, fmt.Errorf("nodeop: %s %s: %w", req.Method, req.URL.Redacted(), err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxPage))
		_ = resp.Body.Close()
		if err != nil {
			return nil, submitted, fmt.Errorf("nodeop: reading %s: %w", req.URL.Path, err)
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
			http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc, err := resp.Location()
			if err != nil {
				return nil, submitted, fmt.Errorf("nodeop: redirect from %s: %w", req.URL.Path, err)
			}
			if !own[loc.Host] {
				return loc, submitted, nil
			}
			if req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil); err != nil {
				return nil, submitted, fmt.Errorf("nodeop: %w", err)
			}
			continue
		}
		var values url.Values
		var action string
		for _, f := range parseForms(string(body)) {
			if v, ok := fill(f); ok {
				values, action = v, f.action
				break
			}
		}
		if values == nil {
			if submitted && resp.StatusCode == http.StatusOK {
				return nil, submitted, nil
			}
			return nil, submitted, fmt.Errorf("nodeop: unexpected page from %s %s: %s: %s",
				req.Method, req.URL.Path, resp.Status, snippet(body))
		}
		target, err := req.URL.Parse(action)
		if err != nil {
			return nil, submitted, fmt.Errorf("nodeop: form action: %w", err)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(values.Encode()))
		if err != nil {
			return nil, submitted, fmt.Errorf("nodeop: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		submitted = true
	}
	return nil, submitted, fmt.Errorf("nodeop: still on the provider after %d requests", maxSteps)
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// form is what walk needs to know of an HTML form: its action, hidden
// fields, and the names of its first text and password inputs.
type form struct {
	action         string
	hidden         url.Values
	text, password string
}

var (
	formRe  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRe = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRe  = regexp.MustCompile(`(?is)([a-z_:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
)

// parseForms understands the provider's own pages (devInteractions login and
// consent, the logout confirmation), nothing more.
func parseForms(page string) []*form {
	var out []*form
	for _, m := range formRe.FindAllStringSubmatch(page, -1) {
		f := &form{action: attrs(m[1])["action"], hidden: url.Values{}}
		for _, in := range inputRe.FindAllStringSubmatch(m[2], -1) {
			a := attrs(in[1])
			name := a["name"]
			if name == "" {
				continue
			}
			switch strings.ToLower(a["type"]) {
			case "hidden":
				f.hidden.Set(name, a["value"])
			case "password":
				f.password = name
			case "", "text", "email":
				if f.text == "" {
					f.text = name
				}
			}
		}
		out = append(out, f)
	}
	return out
}

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRe.FindAllStringSubmatch(s, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2] + a[3])
	}
	return m
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}
