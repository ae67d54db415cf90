package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/redistest"
)

// storeSpecs are the session stores every end-to-end scenario runs on.
func storeSpecs(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"memory": func(*testing.T) string { return "memory" },
		"cookie": func(*testing.T) string { return "cookie" },
		"file":   func(t *testing.T) string { return "file:" + t.TempDir() + "/sessions.db" },
		"redis":  func(t *testing.T) string { return redistest.Start(t).URL },
	}
}

// TestStoresEndToEnd runs the same life of a session on every store: sign
// in, user endpoint, API with the user's token, refresh bursts at expiry,
// idle timeout, and logout.
func TestStoresEndToEnd(t *testing.T) {
	for name, spec := range storeSpecs(t) {
		t.Run(name, func(t *testing.T) {
			store := spec(t)
			e := newSharedClockEnv(t, func(o *idp.Options) { o.AccessTokenTTL = 10 * time.Second },
				func(c *config.Config) { c.Session.Store = store })
			b := newBrowser(t)
			landing := e.login(t, b, "alice")
			if landing.StatusCode != http.StatusOK {
				t.Fatalf("login: %d", landing.StatusCode)
			}
			if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"alice-1"`) {
				t.Fatalf("/bff/user: %d %s", r.StatusCode, r.Body)
			}
			for round := range 5 {
				before := e.idp.Stats().RefreshGrants
				e.g.Clock.Advance(9 * time.Second)
				if codes := burst(t, b, 20, e.g.URL+"/api/orders/x"); codes[http.StatusOK] != 20 {
					t.Fatalf("round %d: statuses %v; logs:\n%s", round, codes, e.g.Logs)
				}
				if got := e.idp.Stats().RefreshGrants - before; got != 1 {
					t.Fatalf("round %d: %d refresh grants, want 1", round, got)
				}
			}
			reqs := e.up.Requests()
			if _, err := e.idp.VerifyAccessToken(bearerOf(reqs[len(reqs)-1])); err != nil {
				t.Errorf("last token invalid: %v", err)
			}
			logoutURL := claim(t, b, e.g.URL, "bff:logout_url")
			location(t, b.get(e.g.URL+logoutURL))
			if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("/bff/user after logout: %d", r.StatusCode)
			}
			// Idle timeout, with a fresh login.
			e.login(t, b, "alice")
			e.g.Clock.Advance(31 * time.Minute)
			if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("/bff/user after idling: %d", r.StatusCode)
			}
			assertNoSecrets(t, e.g.Logs.String(), append(e.idp.IssuedTokens(), "web-secret")...)
		})
	}
}

func claim(t *testing.T, b *browser, base, typ string) string {
	t.Helper()
	r := b.get(base+"/bff/user", "X-CSRF", "1")
	var claims []struct {
		Type  string `json:"type"`
		Value any    `json:"value"`
	}
	if err := json.Unmarshal([]byte(r.Body), &claims); err != nil {
		t.Fatalf("/bff/user: %d %s", r.StatusCode, r.Body)
	}
	for _, c := range claims {
		if c.Type == typ {
			return fmt.Sprint(c.Value)
		}
	}
	t.Fatalf("no %s claim", typ)
	return ""
}

// TestCookieModeChunks: a session with a large ID token travels in several
// cookies; logout expires every one of them.
func TestCookieModeChunks(t *testing.T) {
	groups := make([]string, 100)
	for i := range groups {
		groups[i] = fmt.Sprintf("group-with-a-long-name-%03d", i)
	}
	e := newSharedClockEnv(t, func(o *idp.Options) {
		o.Users = append(o.Users, idp.User{Subject: "carol-1", Username: "carol", Password: "carol", Claims: map[string]any{"name": "Carol", "groups": groups}})
	}, func(c *config.Config) { c.Session.Store = "cookie" })
	b := newBrowser(t)
	landing := e.login(t, b, "carol")
	if landing.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s\n%s", landing.StatusCode, landing.Body, e.g.Logs)
	}
	var names []string
	for _, c := range landing.Cookies() {
		if strings.HasPrefix(c.Name, "__Host-Http-cloakroom") {
			names = append(names, c.Name)
			if len(c.Value) > 3800 {
				t.Errorf("%s is %d bytes", c.Name, len(c.Value))
			}
		}
	}
	if len(names) < 3 || names[0] != "__Host-Http-cloakroom.0" {
		t.Fatalf("session cookies %v, want several chunks", names)
	}
	raw := strings.Join(landing.Header["Set-Cookie"], "\n")
	if strings.Count(raw, "HttpOnly") < len(names) || strings.Count(raw, "SameSite=Strict") < len(names) {
		t.Errorf("chunk attributes: %s", raw)
	}
	for _, tok := range e.idp.IssuedTokens() {
		if strings.Contains(raw, tok) {
			t.Fatal("a token is readable in the cookies")
		}
	}
	if got := claim(t, b, e.g.URL, "sub"); got != "carol-1" {
		t.Errorf("sub %s", got)
	}
	if r := b.get(e.g.URL+"/api/orders/x", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("API: %d", r.StatusCode)
	}
	out := b.get(e.g.URL + claim(t, b, e.g.URL, "bff:logout_url"))
	expired := 0
	for _, c := range out.Cookies() {
		if strings.HasPrefix(c.Name, "__Host-Http-cloakroom.") && c.MaxAge < 0 {
			expired++
		}
	}
	if expired != len(names) {
		t.Errorf("logout expired %d of %d chunks: %v", expired, len(names), out.Header["Set-Cookie"])
	}
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: %d", r.StatusCode)
	}
}

// TestCookieModeTamper: a modified or truncated cookie is no session.
func TestCookieModeTamper(t *testing.T) {
	e := newSharedClockEnv(t, nil, func(c *config.Config) { c.Session.Store = "cookie" })
	b := newBrowser(t)
	e.login(t, b, "alice")
	u := mustURL(e.g.URL)
	var orig []*http.Cookie
	for _, c := range b.jar.Cookies(u) {
		if strings.HasPrefix(c.Name, "__Host-Http-cloakroom.") {
			orig = append(orig, c)
		}
	}
	for name, mut := range map[string]func(string) string{
		"flipped": func(v string) string {
			bs := []byte(v)
			if bs[len(bs)/2] == 'A' {
				bs[len(bs)/2] = 'B'
			} else {
				bs[len(bs)/2] = 'A'
			}
			return string(bs)
		},
		"truncated": func(v string) string { return v[:len(v)-10] },
	} {
		evil := newBrowser(t)
		var cs []*http.Cookie
		for _, c := range orig {
			cs = append(cs, &http.Cookie{Name: c.Name, Value: mut(c.Value), Path: "/"})
		}
		evil.jar.SetCookies(u, cs)
		if r := evil.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s cookie: %d", name, r.StatusCode)
		}
	}
}
