package server_test

import (
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sessionCookie(t *testing.T, r response) *http.Cookie {
	t.Helper()
	for _, c := range r.Cookies() {
		if c.Name == "__Host-Http-cloakroom" {
			return c
		}
	}
	t.Fatalf("no session cookie in %v", r.Header["Set-Cookie"])
	return nil
}

func TestLoginFlow(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)

	landing := e.login(t, b, "alice")
	if landing.StatusCode != http.StatusOK {
		t.Fatalf("landing status %d: %s", landing.StatusCode, landing.Body)
	}
	// The landing page navigates on from our own origin (no SameSite=Strict
	// login loop) to the returnUrl.
	if !strings.Contains(landing.Body, `content="0;url=/app/home"`) {
		t.Errorf("landing page does not continue to returnUrl: %s", landing.Body)
	}

	c := sessionCookie(t, landing)
	raw := strings.Join(landing.Header["Set-Cookie"], "\n")
	for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(raw, attr) {
			t.Errorf("session cookie lacks %s: %s", attr, raw)
		}
	}
	if c.Domain != "" || strings.Contains(strings.ToLower(raw), "domain=") {
		t.Errorf("session cookie has a Domain: %s", raw)
	}
	if len(c.Value) != 43 {
		t.Errorf("ticket %q is not 256 bits base64url", c.Value)
	}
	for _, tok := range e.idp.IssuedTokens() {
		if strings.Contains(c.Value, tok) || strings.Contains(landing.Body, tok) {
			t.Fatal("a token reached the browser")
		}
	}
	// The login-attempt cookie is spent.
	if !strings.Contains(raw, "__Host-cloakroom-login-") || !strings.Contains(raw, "Max-Age=0") {
		t.Errorf("login-attempt cookie not deleted at the callback: %s", raw)
	}

	u := b.get(e.g.URL+"/bff/user", "X-CSRF", "1")
	if u.StatusCode != http.StatusOK {
		t.Fatalf("/bff/user status %d", u.StatusCode)
	}
	golden(t, "user.golden.json", normaliseUser(t, u.Body))

	// A second login replaces the ticket.
	landing2 := e.login(t, b, "alice")
	if c2 := sessionCookie(t, landing2); c2.Value == c.Value {
		t.Error("ticket not replaced on a new login")
	}
	old := newBrowser(t)
	old.jar.SetCookies(mustURL(e.g.URL), []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/"}})
	if r := old.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("the replaced ticket still works: %d", r.StatusCode)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// normaliseUser replaces the values that differ per run.
func normaliseUser(t *testing.T, body string) string {
	t.Helper()
	var claims []map[string]any
	if err := json.Unmarshal([]byte(body), &claims); err != nil {
		t.Fatalf("/bff/user is not a JSON array: %v: %s", err, body)
	}
	for _, c := range claims {
		switch c["type"] {
		case "bff:logout_url":
			s, _ := c["value"].(string)
			if !regexp.MustCompile(`^/bff/logout\?sid=[A-Za-z0-9_-]{22}$`).MatchString(s) {
				t.Errorf("logout url %q", s)
			}
			c["value"] = "/bff/logout?sid=SID"
		case "bff:session_expires_in":
			n, ok := c["value"].(float64)
			if !ok || n < 29*60 || n > 30*60 {
				t.Errorf("session_expires_in %v, want about 1800", c["value"])
			}
			c["value"] = 1800
		case "sid", "auth_time":
			c["value"] = "X"
		}
	}
	out, _ := json.MarshalIndent(claims, "", "  ")
	return string(out) + "\n"
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestUserNeedsCSRFAndSession(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	for _, tc := range []struct {
		name string
		hdr  []string
	}{
		{"no session", []string{"X-CSRF", "1"}},
		{"no header", nil},
	} {
		r := b.get(e.g.URL+"/bff/user", tc.hdr...)
		if r.StatusCode != http.StatusUnauthorized || r.Body != "" {
			t.Errorf("%s: got %d %q, want 401 with an empty body", tc.name, r.StatusCode, r.Body)
		}
	}
	e.login(t, b, "alice")
	for _, hdr := range [][]string{nil, {"X-CSRF", "0"}, {"X-CSRF", ""}} {
		if r := b.get(e.g.URL+"/bff/user", hdr...); r.StatusCode != http.StatusUnauthorized || r.Body != "" {
			t.Errorf("header %q: got %d %q, want 401 empty", hdr, r.StatusCode, r.Body)
		}
	}
}

func TestReturnURLValidation(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	for _, bad := range []string{
		"//evil.example", `/\evil.example`, "https:evil.example", "/\t/evil.example",
		"https://evil.example/", "http://localhost/x", "javascript:alert(1)", "evil.example",
		"/%2F%2Fevil.example", "/\x00x", " /x",
	} {
		r := b.get(e.g.URL + "/bff/login?returnUrl=" + url.QueryEscape(bad))
		if r.StatusCode != http.StatusBadRequest || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("returnUrl %q: got %d %s, want 400 problem+json", bad, r.StatusCode, r.Header.Get("Content-Type"))
		}
		if len(r.Cookies()) != 0 {
			t.Errorf("returnUrl %q: set cookies %v", bad, r.Cookies())
		}
	}
	// The raw %09 form, as an attacker would type it.
	if r := b.get(e.g.URL + "/bff/login?returnUrl=/%09/evil.example"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("/%%09/evil.example: got %d", r.StatusCode)
	}
	for _, good := range []string{"", "/", "/app?x=1#frag", "/a/b"} {
		r := b.get(e.g.URL + "/bff/login?returnUrl=" + url.QueryEscape(good))
		if r.StatusCode != http.StatusFound {
			t.Errorf("returnUrl %q: got %d, want 302", good, r.StatusCode)
		}
	}
}

func TestLoginRequest(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	r := b.get(e.g.URL + "/bff/login?prompt=login")
	auth := location(t, r)
	q := auth.Query()
	for k, want := range map[string]string{"response_type": "code", "client_id": "web", "code_challenge_method": "S256", "prompt": "login", "redirect_uri": e.g.URL + "/bff/callback"} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 32 {
			t.Errorf("%s = %q, want a long random value", k, q.Get(k))
		}
	}
	raw := strings.Join(r.Header["Set-Cookie"], "\n")
	for _, attr := range []string{"__Host-cloakroom-login-", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=600", "Path=/"} {
		if !strings.Contains(raw, attr) {
			t.Errorf("login-attempt cookie lacks %s: %s", attr, raw)
		}
	}
	if r := b.get(e.g.URL + "/bff/login?prompt=evil"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("bad prompt: got %d", r.StatusCode)
	}
}

func TestParallelLoginAttempts(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	// Two tabs start a login; both finish, in the opposite order.
	a1 := location(t, b.get(e.g.URL+"/bff/login?returnUrl=/one"))
	a2 := location(t, b.get(e.g.URL+"/bff/login?returnUrl=/two"))
	cb2 := demoLogin(t, b, a2, "alice", "alice")
	cb1 := demoLogin(t, b, a1, "alice", "alice")
	for _, tc := range []struct {
		cb   *url.URL
		want string
	}{{cb2, "/two"}, {cb1, "/one"}} {
		r := b.get(tc.cb.String())
		if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "url="+tc.want) {
			t.Errorf("callback for %s: %d %s", tc.want, r.StatusCode, r.Body)
		}
	}
}

func TestCallbackErrors(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	auth := location(t, b.get(e.g.URL+"/bff/login"))
	cb := demoLogin(t, b, auth, "alice", "alice")
	q := cb.Query()
	state, code := q.Get("state"), q.Get("code")

	cases := []struct {
		name  string
		query url.Values
	}{
		{"no state", url.Values{"code": {code}, "iss": {q.Get("iss")}}},
		{"unknown state", url.Values{"state": {strings.Repeat("A", 43)}, "code": {code}, "iss": {q.Get("iss")}}},
		{"wrong iss", url.Values{"state": {state}, "code": {code}, "iss": {"https://evil.example"}}},
	}
	for _, tc := range cases {
		r := b.get(e.g.URL + "/bff/callback?" + tc.query.Encode())
		if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.Body, "Sign-in failed") {
			t.Errorf("%s: got %d %s", tc.name, r.StatusCode, r.Body)
		}
		for _, c := range r.Cookies() {
			if c.Name == "__Host-Http-cloakroom" && c.MaxAge >= 0 {
				t.Errorf("%s: a session cookie was set", tc.name)
			}
		}
		if strings.Contains(r.Body, code) {
			t.Errorf("%s: the code is echoed", tc.name)
		}
	}
	// The wrong-iss case spent the attempt: replaying the real response now fails too.
	if r := b.get(cb.String()); r.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed callback: got %d", r.StatusCode)
	}
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("a session exists after failed callbacks: %d", r.StatusCode)
	}
	assertNoSecrets(t, e.g.Logs.String(), code, "web-secret")

	// Missing code and provider errors, each with a fresh attempt.
	for _, tc := range []struct {
		name string
		q    func(url.Values)
	}{
		{"no code", func(v url.Values) { v.Del("code") }},
		{"provider error", func(v url.Values) { v.Del("code"); v.Set("error", "access_denied") }},
		{"bad code", func(v url.Values) { v.Set("code", "forged") }},
	} {
		b := newBrowser(t)
		auth := location(t, b.get(e.g.URL+"/bff/login"))
		cb := demoLogin(t, b, auth, "alice", "alice")
		v := cb.Query()
		tc.q(v)
		r := b.get(e.g.URL + "/bff/callback?" + v.Encode())
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: got %d", tc.name, r.StatusCode)
		}
		if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: a session exists: %d", tc.name, r.StatusCode)
		}
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	e.login(t, b, "alice")
	var claims []struct {
		Type  string `json:"type"`
		Value any    `json:"value"`
	}
	if err := json.Unmarshal([]byte(b.get(e.g.URL+"/bff/user", "X-CSRF", "1").Body), &claims); err != nil {
		t.Fatal(err)
	}
	var logoutURL string
	for _, c := range claims {
		if c.Type == "bff:logout_url" {
			logoutURL = c.Value.(string)
		}
	}
	for _, bad := range []string{"/bff/logout", "/bff/logout?sid=wrong"} {
		if r := b.get(e.g.URL + bad); r.StatusCode != http.StatusBadRequest || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: got %d %s", bad, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Fatalf("a refused logout ended the session: %d", r.StatusCode)
	}
	ticket := ""
	for _, c := range b.jar.Cookies(mustURL(e.g.URL)) {
		if c.Name == "__Host-Http-cloakroom" {
			ticket = c.Value
		}
	}
	before := e.idp.Stats().Revocations
	r := b.get(e.g.URL + logoutURL)
	to := location(t, r)
	if !strings.HasSuffix(to.Path, "/end_session") || to.Query().Get("id_token_hint") == "" || to.Query().Get("post_logout_redirect_uri") != e.g.URL+"/" {
		t.Errorf("logout redirect %s", to)
	}
	if got := e.idp.Stats().Revocations; got != before+1 {
		t.Errorf("revocations %d, want %d", got, before+1)
	}
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("session survived logout: %d", r.StatusCode)
	}
	// The provider's end-session endpoint accepts our hint and returns to us.
	back := location(t, b.get(to.String()))
	if back.String() != e.g.URL+"/" {
		t.Errorf("provider sent the browser to %s", back)
	}
	assertNoSecrets(t, e.g.Logs.String(), append(e.idp.IssuedTokens(), ticket, "web-secret")...)
}

// assertNoSecrets fails when any secret appears in logs.
func assertNoSecrets(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	if logs == "" {
		t.Fatal("no logs captured")
	}
	for i, s := range secrets {
		if s == "" {
			t.Fatalf("secret %d is empty", i)
		}
		if strings.Contains(logs, s) {
			t.Errorf("secret %d of %d appears in the logs", i, len(secrets))
		}
	}
}

func TestSessionTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []time.Duration // advance, then call /bff/user expecting 200, except the last
	}{
		{"idle", []time.Duration{31 * time.Minute}},
		{"sliding keeps it alive, absolute ends it", repeat(25*time.Minute, 29)}, // 29*25m > 12h
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *config.Config) {
				c.Session.IdleTimeout = 30 * time.Minute
				c.Session.AbsoluteTimeout = 12 * time.Hour
			})
			b := newBrowser(t)
			e.login(t, b, "alice")
			for i, d := range tc.steps {
				e.g.Clock.Advance(d)
				want := http.StatusOK
				if i == len(tc.steps)-1 {
					want = http.StatusUnauthorized
				}
				if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != want {
					t.Fatalf("step %d (+%v): got %d, want %d", i, d, r.StatusCode, want)
				}
			}
			if r := b.get(e.g.URL+"/api/orders/x", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("API after expiry: got %d", r.StatusCode)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestSlideFalse(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	e.login(t, b, "alice")
	e.g.Clock.Advance(20 * time.Minute)
	b.get(e.g.URL+"/bff/user?slide=false", "X-CSRF", "1")
	e.g.Clock.Advance(11 * time.Minute)
	if r := b.get(e.g.URL+"/bff/user?slide=false", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("slide=false extended the session: %d", r.StatusCode)
	}
}

// TestProviderDownAtStart: the gateway starts without its provider, answers
// /bff/login with 503 until discovery succeeds, then works.
func TestProviderDownAtStart(t *testing.T) {
	ln, public := listenLocal(t)
	p, srv := demoProvider(t, public, nil)
	p.SetDown(true)
	g := runGateway(t, ln, baseConfig(public, srv.URL, "web", "web-secret"), serverOptions())
	b := newBrowser(t)
	r := b.get(g.URL + "/bff/login")
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("provider down: got %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	if len(r.Cookies()) != 0 {
		t.Errorf("cookies set while down: %v", r.Cookies())
	}
	if r := b.get(g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("/bff/user while down: %d", r.StatusCode)
	}
	p.SetDown(false)
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := b.get(g.URL + "/bff/login")
		if r.StatusCode == http.StatusFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d after the provider came back; logs:\n%s", r.StatusCode, g.Logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e := &env{g: g, idp: p}
	if r := e.login(t, newBrowser(t), "alice"); r.StatusCode != http.StatusOK {
		t.Errorf("login after recovery: %d", r.StatusCode)
	}
}
