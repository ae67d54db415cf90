package idp

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

const (
	rpOrigin      = "http://rp.test"
	redirectURI   = rpOrigin + "/callback"
	postLogoutURI = rpOrigin + "/signed-out"
	webID         = "web"
	webSecret     = "web secret+/=&" // needs form-encoding in Basic auth
	apiID         = "orders-gateway"
	apiSecret     = "orders-secret"
)

// fakeClock is a settable clock shared by the provider and the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	p     *Provider
	srv   *httptest.Server
	clock *fakeClock
	rcv   *receiver // the web client's back-channel logout endpoint
}

// logoutRequest is a request a receiver got.
type logoutRequest struct {
	method, path, contentType, token string
}

// receiver plays the relying parties' back-channel logout endpoints: it
// records every request and answers 200 unless answer says otherwise.
type receiver struct {
	srv *httptest.Server

	mu  sync.Mutex
	got []logoutRequest
	// answer, when set, writes the response to the n-th request (from 1).
	answer func(n int, w http.ResponseWriter)
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		rc.mu.Lock()
		rc.got = append(rc.got, logoutRequest{
			method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"),
			token: r.PostForm.Get("logout_token"),
		})
		n, answer := len(rc.got), rc.answer
		rc.mu.Unlock()
		if answer != nil {
			answer(n, w)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) setAnswer(f func(n int, w http.ResponseWriter)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.answer = f
}

// requests returns the requests received so far and forgets them.
func (rc *receiver) requests() []logoutRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	got := rc.got
	rc.got = nil
	return got
}

func testUsers() []User {
	return []User{
		{Subject: "u-alice", Username: "alice", Password: "alice-pw", Claims: map[string]any{
			"name": "Alice Example", "email": "alice@example.test", "email_verified": true,
			"role": "admin", "groups": []any{"staff", "ops"},
		}},
		{Subject: "u-bob", Username: "bob", Password: "bob-pw", Claims: map[string]any{
			"name": "Bob Example", "email": "bob@example.test", "role": "user",
		}},
	}
}

// newEnv starts a provider on a loopback listener. The clock starts at the
// real time so that go-oidc, which uses its own clock, accepts the tokens.
func newEnv(t *testing.T, mutate func(*Options)) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	clock := &fakeClock{t: time.Now()}
	rcv := newReceiver(t)
	opts := Options{
		Issuer: "http://" + srv.Listener.Addr().String(),
		Clients: []Client{
			{ID: webID, Secret: webSecret, RedirectURIs: []string{redirectURI}, PostLogoutRedirectURIs: []string{postLogoutURI},
				BackchannelLogoutURI: rcv.srv.URL + "/bff/backchannel"},
			{ID: apiID, Secret: apiSecret},
		},
		Users:     testUsers(),
		LoginHint: "alice / alice-pw",
		Now:       clock.Now,
	}
	if mutate != nil {
		mutate(&opts)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv.Config.Handler = p
	srv.Start()
	t.Cleanup(srv.Close)
	// Before the receiver closes: cleanups run last-registered first.
	t.Cleanup(p.WaitBackchannel)
	return &env{t: t, p: p, srv: srv, clock: clock, rcv: rcv}
}

// browser is a client with a cookie jar that stops at the relying party.
func (e *env) browser() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	// A copy: srv.Client returns the same client on every call.
	c := new(http.Client)
	*c = *e.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), rpOrigin+"/") {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return c
}

// authParams is the parameters of an authorization request and the
// secrets the relying party keeps.
type authParams struct {
	values   url.Values
	verifier string
}

func (e *env) authParams(scope string) authParams {
	v := oauth2.GenerateVerifier()
	return authParams{
		verifier: v,
		values: url.Values{
			"client_id":             {webID},
			"redirect_uri":          {redirectURI},
			"response_type":         {"code"},
			"scope":                 {scope},
			"state":                 {"state-" + randomString(8)},
			"nonce":                 {"nonce-" + randomString(8)},
			"code_challenge":        {oauth2.S256ChallengeFromVerifier(v)},
			"code_challenge_method": {"S256"},
		},
	}
}

func (e *env) get(c *http.Client, u string) (*http.Response, string) {
	e.t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		e.t.Fatalf("GET %s: %v", u, err)
	}
	return resp, readBody(e.t, resp)
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var requestHandle = regexp.MustCompile(`name="request" value="([^"]+)"`)

// submitLogin posts the login form found in page.
func (e *env) submitLogin(c *http.Client, page, username, password string) (*http.Response, string) {
	e.t.Helper()
	m := requestHandle.FindStringSubmatch(page)
	if m == nil {
		e.t.Fatalf("no login form in page:\n%s", page)
	}
	resp, err := c.PostForm(e.p.Issuer()+"/authorize", url.Values{
		"request": {m[1]}, "username": {username}, "password": {password},
	})
	if err != nil {
		e.t.Fatalf("POST login: %v", err)
	}
	return resp, readBody(e.t, resp)
}

// callback checks that resp redirects to the relying party and returns
// the query it carries.
func (e *env) callback(resp *http.Response, base string) url.Values {
	e.t.Helper()
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("status %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != base {
		e.t.Fatalf("redirected to %q, want %q", got, base)
	}
	return loc.Query()
}

// login signs alice in through the form and returns the code callback.
func (e *env) login(c *http.Client, ap authParams) url.Values {
	e.t.Helper()
	_, page := e.get(c, e.p.Issuer()+"/authorize?"+ap.values.Encode())
	resp, _ := e.submitLogin(c, page, "alice", "alice-pw")
	q := e.callback(resp, redirectURI)
	if q.Get("code") == "" {
		e.t.Fatalf("no code in callback %v", q)
	}
	return q
}

// post posts a form to an endpoint of the provider with
// client_secret_basic credentials.
func (e *env) post(path string, form url.Values, id, secret string) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.p.Issuer()+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	body := readBody(e.t, resp)
	var m map[string]any
	if body != "" {
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			e.t.Fatalf("%s: body %q: %v", path, body, err)
		}
	}
	return resp.StatusCode, m
}

func (e *env) token(form url.Values) (int, map[string]any) {
	e.t.Helper()
	return e.post("/token", form, webID, webSecret)
}

// codeTokens signs alice in with scope and redeems the code.
func (e *env) codeTokens(scope string) map[string]any {
	e.t.Helper()
	ap := e.authParams(scope)
	q := e.login(e.browser(), ap)
	status, body := e.token(url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {ap.verifier},
	})
	if status != http.StatusOK {
		e.t.Fatalf("code grant: %d %v", status, body)
	}
	return body
}

func (e *env) refresh(rt string, extra url.Values) (int, map[string]any) {
	e.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	for k, v := range extra {
		form[k] = v
	}
	return e.token(form)
}

// claimsOf decodes a JWT's payload without verifying it.
func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func wantError(t *testing.T, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["error"] != wantCode {
		t.Fatalf("got %d %v, want %d error %q", status, body, wantStatus, wantCode)
	}
}
