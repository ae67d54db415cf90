package idp

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// signIn signs username in through the form in browser b (which must not
// have a provider session) and returns the ID token's claims.
func (e *env) signIn(b *http.Client, username, password string) map[string]any {
	e.t.Helper()
	ap := e.authParams("openid")
	_, page := e.get(b, e.p.Issuer()+"/authorize?"+ap.values.Encode())
	resp, _ := e.submitLogin(b, page, username, password)
	return e.redeem(ap, e.callback(resp, redirectURI))
}

// redeem exchanges the code of callback q and returns the ID token's claims.
func (e *env) redeem(ap authParams, q url.Values) map[string]any {
	e.t.Helper()
	status, body := e.post("/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {ap.values.Get("redirect_uri")}, "code_verifier": {ap.verifier},
	}, ap.values.Get("client_id"), e.secretOf(ap.values.Get("client_id")))
	if status != http.StatusOK {
		e.t.Fatalf("code grant: %d %v", status, body)
	}
	return claimsOf(e.t, str(body["id_token"]))
}

func (e *env) secretOf(clientID string) string {
	return e.p.clients[clientID].Secret
}

// silent runs a prompt=none authorization for clientID in browser b and
// returns the callback query: a code, or error login_required.
func (e *env) silent(b *http.Client, clientID string) (authParams, url.Values) {
	e.t.Helper()
	ap := e.authParams("openid")
	ap.values.Set("client_id", clientID)
	ap.values.Set("prompt", "none")
	resp, _ := e.get(b, e.p.Issuer()+"/authorize?"+ap.values.Encode())
	return ap, e.callback(resp, redirectURI)
}

// signedIn reports whether browser b has a provider session.
func (e *env) signedIn(b *http.Client) bool {
	e.t.Helper()
	_, q := e.silent(b, webID)
	switch {
	case q.Get("code") != "":
		return true
	case q.Get("error") == "login_required":
		return false
	}
	e.t.Fatalf("silent authorization: %v", q)
	return false
}

// logoutTokens waits for the back-channel deliveries and returns the
// logout tokens received since the last call, checking the requests' form.
func (e *env) logoutTokens() []string {
	e.t.Helper()
	e.p.WaitBackchannel()
	var out []string
	for _, r := range e.rcv.requests() {
		if r.method != http.MethodPost || r.contentType != "application/x-www-form-urlencoded" || r.token == "" {
			e.t.Errorf("back-channel request %s %s %q with token %t", r.method, r.path, r.contentType, r.token != "")
		}
		out = append(out, r.token)
	}
	return out
}

func sidsOf(t *testing.T, tokens []string) []string {
	t.Helper()
	var out []string
	for _, tok := range tokens {
		out = append(out, str(claimsOf(t, tok)["sid"]))
	}
	return out
}

func TestSIDPerSession(t *testing.T) {
	e := newEnv(t, nil)
	b1, b2 := e.browser(), e.browser()
	sid1 := str(e.signIn(b1, "alice", "alice-pw")["sid"])
	sid2 := str(e.signIn(b2, "alice", "alice-pw")["sid"])
	if sid1 == "" || sid1 == sid2 {
		t.Fatalf("sids %q and %q, want two different ones", sid1, sid2)
	}
	// Later ID tokens of a session carry its sid, and so do access tokens.
	ap, q := e.silent(b1, webID)
	if got := str(e.redeem(ap, q)["sid"]); got != sid1 {
		t.Errorf("silent sign-in sid %q, want %q", got, sid1)
	}
	ap = e.authParams("openid")
	ap.values.Set("prompt", "login")
	_, page := e.get(b1, e.p.Issuer()+"/authorize?"+ap.values.Encode())
	resp, _ := e.submitLogin(b1, page, "alice", "alice-pw")
	if got := str(e.redeem(ap, e.callback(resp, redirectURI))["sid"]); got != sid1 {
		t.Errorf("sid after signing in again %q, want %q", got, sid1)
	}
	for _, tok := range e.p.IssuedTokens() {
		if strings.Count(tok, ".") != 2 {
			continue // a refresh token
		}
		if c := claimsOf(t, tok); c["sid"] != sid1 && c["sid"] != sid2 {
			t.Errorf("%v token sid %v", c["client_id"], c["sid"])
		}
	}

	e.p.LogoutSID(sid1)
	if got := sidsOf(t, e.logoutTokens()); !cmp.Equal(got, []string{sid1}) {
		t.Errorf("logout token sids %q, want [%q]", got, sid1)
	}
}

func TestLogoutSIDAndSubject(t *testing.T) {
	e := newEnv(t, nil)
	b1, b2, b3 := e.browser(), e.browser(), e.browser()
	sid1 := str(e.signIn(b1, "alice", "alice-pw")["sid"])
	sid2 := str(e.signIn(b2, "alice", "alice-pw")["sid"])
	e.signIn(b3, "bob", "bob-pw")
	if got := e.logoutTokens(); len(got) != 0 {
		t.Fatalf("%d logout tokens before any logout", len(got))
	}

	e.p.LogoutSID(sid1)
	tokens := e.logoutTokens()
	if got := sidsOf(t, tokens); !cmp.Equal(got, []string{sid1}) {
		t.Fatalf("LogoutSID: logout token sids %q, want [%q]", got, sid1)
	}
	if c := claimsOf(t, tokens[0]); c["sub"] != "u-alice" || c["aud"] != webID {
		t.Errorf("logout token sub %v aud %v", c["sub"], c["aud"])
	}
	if e.signedIn(b1) || !e.signedIn(b2) || !e.signedIn(b3) {
		t.Error("LogoutSID ended the wrong sessions")
	}

	// Unknown sids and subjects change nothing.
	e.p.LogoutSID(sid1)
	e.p.LogoutSID("nope")
	e.p.LogoutSubject("nobody")
	if got := e.logoutTokens(); len(got) != 0 {
		t.Errorf("%d logout tokens for unknown sessions", len(got))
	}

	e.p.LogoutSubject("u-alice")
	if got := sidsOf(t, e.logoutTokens()); !cmp.Equal(got, []string{sid2}) {
		t.Errorf("LogoutSubject: logout token sids %q, want [%q]", got, sid2)
	}
	if e.signedIn(b2) || !e.signedIn(b3) {
		t.Error("LogoutSubject ended the wrong sessions")
	}

	want := []Delivery{
		{ClientID: webID, URI: e.rcv.srv.URL + "/bff/backchannel", Sub: "u-alice", SID: sid1, Status: 200},
		{ClientID: webID, URI: e.rcv.srv.URL + "/bff/backchannel", Sub: "u-alice", SID: sid2, Status: 200},
	}
	if diff := cmp.Diff(want, e.p.BackchannelDeliveries()); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
}

func TestLogoutSubjectEveryBrowser(t *testing.T) {
	e := newEnv(t, nil)
	b1, b2 := e.browser(), e.browser()
	sid1 := str(e.signIn(b1, "alice", "alice-pw")["sid"])
	sid2 := str(e.signIn(b2, "alice", "alice-pw")["sid"])
	e.p.LogoutSubject("u-alice")
	got := sidsOf(t, e.logoutTokens())
	if len(got) != 2 || !strings.Contains(strings.Join(got, " "), sid1) || !strings.Contains(strings.Join(got, " "), sid2) {
		t.Errorf("logout token sids %q, want %q and %q", got, sid1, sid2)
	}
	if e.signedIn(b1) || e.signedIn(b2) {
		t.Error("a session survived LogoutSubject")
	}
}

func TestEndSessionBackchannel(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	idClaims := e.signIn(b, "alice", "alice-pw")
	sid := str(idClaims["sid"])

	resp, _ := e.get(b, e.p.Issuer()+"/end_session")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("end_session: %d", resp.StatusCode)
	}
	tokens := e.logoutTokens()
	if len(tokens) != 1 {
		t.Fatalf("%d logout tokens, want 1", len(tokens))
	}
	// Signing out again, with no session left, sends nothing.
	e.get(b, e.p.Issuer()+"/end_session")
	if got := e.logoutTokens(); len(got) != 0 {
		t.Errorf("%d logout tokens for a signed-out browser", len(got))
	}

	// The token verifies with the published JWKS.
	var keys jose.JSONWebKeySet
	_, body := e.get(e.srv.Client(), e.p.Issuer()+"/jwks")
	if err := json.Unmarshal([]byte(body), &keys); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(tokens[0], []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Protected
	if typ := h.ExtraHeaders[jose.HeaderType]; typ != "logout+jwt" || h.Algorithm != "RS256" {
		t.Errorf("typ %v alg %v", typ, h.Algorithm)
	}
	k := keys.Key(h.KeyID)
	if len(k) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", h.KeyID, len(k))
	}
	payload, err := jws.Verify(k[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]any{
		"iss": e.p.Issuer(), "aud": webID, "sub": "u-alice", "sid": sid,
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	} {
		if !cmp.Equal(claims[name], want) {
			t.Errorf("%s = %v, want %v", name, claims[name], want)
		}
	}
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	if iat != float64(e.clock.Now().Unix()) || exp-iat != 120 {
		t.Errorf("iat %v exp %v", iat, exp)
	}
	if str(claims["jti"]) == "" {
		t.Error("no jti")
	}
	if _, ok := claims["nonce"]; ok {
		t.Error("logout token has a nonce")
	}
	if idClaims["nonce"] == nil {
		t.Error("the ID token had no nonce to leave out")
	}
}

func TestEndSessionByHintBackchannel(t *testing.T) {
	e := newEnv(t, nil)
	hint := str(e.codeTokens("openid")["id_token"])
	idClaims := claimsOf(t, hint)
	resp, _ := e.get(e.browser(), e.p.Issuer()+"/end_session?"+url.Values{"id_token_hint": {hint}}.Encode())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := sidsOf(t, e.logoutTokens()); !cmp.Equal(got, []string{str(idClaims["sid"])}) {
		t.Errorf("logout token sids %q, want [%q]", got, idClaims["sid"])
	}
}

func TestBackchannelClients(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		base := strings.TrimSuffix(o.Clients[0].BackchannelLogoutURI, "/bff/backchannel")
		o.Clients = append(o.Clients,
			Client{ID: "admin", Secret: "admin-secret", RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: base + "/admin/backchannel"},
			Client{ID: "plain", Secret: "plain-secret", RedirectURIs: []string{redirectURI}},
		)
	})
	b := e.browser()
	sid := str(e.signIn(b, "alice", "alice-pw")["sid"])
	for _, id := range []string{"admin", "plain"} {
		if _, q := e.silent(b, id); q.Get("code") == "" {
			t.Fatalf("%s: %v", id, q)
		}
	}
	// Another session of alice's, at admin only, is not this one's business.
	e.signIn(e.browser(), "alice", "alice-pw")

	e.p.LogoutSID(sid)
	e.p.WaitBackchannel()
	got := map[string]string{}
	for _, r := range e.rcv.requests() {
		c := claimsOf(t, r.token)
		if c["sid"] != sid {
			t.Errorf("%s: sid %v", r.path, c["sid"])
		}
		got[r.path] = str(c["aud"])
	}
	want := map[string]string{"/bff/backchannel": webID, "/admin/backchannel": "admin"}
	if !cmp.Equal(got, want) {
		t.Errorf("logout tokens by path %v, want %v", got, want)
	}
	if n := len(e.p.BackchannelDeliveries()); n != 2 {
		t.Errorf("%d deliveries, want 2", n)
	}
}

func TestAnotherUserSignsIn(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	sid := str(e.signIn(b, "alice", "alice-pw")["sid"])
	ap := e.authParams("openid")
	ap.values.Set("prompt", "login")
	_, page := e.get(b, e.p.Issuer()+"/authorize?"+ap.values.Encode())
	resp, _ := e.submitLogin(b, page, "bob", "bob-pw")
	if got := str(e.redeem(ap, e.callback(resp, redirectURI))["sid"]); got == sid {
		t.Error("bob got alice's sid")
	}
	if got := sidsOf(t, e.logoutTokens()); !cmp.Equal(got, []string{sid}) {
		t.Errorf("logout token sids %q, want [%q]", got, sid)
	}
}

func TestBackchannelRetry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   func(n int, w http.ResponseWriter)
		requests []string // paths, in order
		status   int
		err      bool
	}{
		{
			name:     "500 twice",
			answer:   func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) },
			requests: []string{"/bff/backchannel", "/bff/backchannel"},
			status:   500, err: true,
		},
		{
			name: "500 then 200",
			answer: func(n int, w http.ResponseWriter) {
				if n == 1 {
					w.WriteHeader(http.StatusInternalServerError)
				}
			},
			requests: []string{"/bff/backchannel", "/bff/backchannel"},
			status:   200,
		},
		{
			name:     "400",
			answer:   func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadRequest) },
			requests: []string{"/bff/backchannel", "/bff/backchannel"},
			status:   400, err: true,
		},
		{
			name: "redirects are not followed",
			answer: func(n int, w http.ResponseWriter) {
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(http.StatusTemporaryRedirect)
			},
			requests: []string{"/bff/backchannel", "/bff/backchannel"},
			status:   307, err: true,
		},
		{
			name:     "204",
			answer:   func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) },
			requests: []string{"/bff/backchannel"},
			status:   204,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.rcv.setAnswer(tc.answer)
			sid := str(e.signIn(e.browser(), "alice", "alice-pw")["sid"])
			e.p.LogoutSID(sid)
			e.p.WaitBackchannel()
			var paths []string
			jtis := map[string]bool{}
			for _, r := range e.rcv.requests() {
				paths = append(paths, r.path)
				jtis[str(claimsOf(t, r.token)["jti"])] = true
			}
			if !cmp.Equal(paths, tc.requests) {
				t.Errorf("requests %q, want %q", paths, tc.requests)
			}
			if len(jtis) != len(paths) {
				t.Errorf("%d distinct jti in %d requests", len(jtis), len(paths))
			}
			d := e.p.BackchannelDeliveries()
			if len(d) != 1 || d[0].Status != tc.status || (d[0].Err != "") != tc.err || d[0].SID != sid {
				t.Errorf("deliveries %+v, want one with status %d, error %t", d, tc.status, tc.err)
			}
		})
	}
}

func TestBackchannelUnreachable(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	e := newEnv(t, func(o *Options) { o.Clients[0].BackchannelLogoutURI = gone.URL + "/bff/backchannel" })
	e.p.LogoutSID(str(e.signIn(e.browser(), "alice", "alice-pw")["sid"]))
	e.p.WaitBackchannel()
	d := e.p.BackchannelDeliveries()
	if len(d) != 1 || d[0].Status != 0 || d[0].Err == "" {
		t.Errorf("deliveries %+v, want one failure without a status", d)
	}
}

type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return nil, errors.New("no network here")
}

func TestBackchannelHTTPClient(t *testing.T) {
	def := newBackchannel(nil).client
	if def.Timeout != 5*time.Second || def.CheckRedirect == nil ||
		def.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
		t.Errorf("default client: timeout %v, redirects followed", def.Timeout)
	}

	tr := &countingTransport{}
	e := newEnv(t, func(o *Options) { o.BackchannelHTTPClient = &http.Client{Transport: tr} })
	e.p.LogoutSID(str(e.signIn(e.browser(), "alice", "alice-pw")["sid"]))
	e.p.WaitBackchannel()
	if n := tr.n.Load(); n != 2 {
		t.Errorf("custom client made %d requests, want 2", n)
	}
	if n := len(e.rcv.requests()); n != 0 {
		t.Errorf("receiver got %d requests past the custom client", n)
	}
	if d := e.p.BackchannelDeliveries(); len(d) != 1 || !strings.Contains(d[0].Err, "no network here") {
		t.Errorf("deliveries %+v", d)
	}
}

func TestWaitBackchannel(t *testing.T) {
	e := newEnv(t, nil)
	e.p.WaitBackchannel() // nothing in flight: returns at once

	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	e.rcv.setAnswer(func(n int, w http.ResponseWriter) {
		arrived <- struct{}{}
		<-release
	})
	sid := str(e.signIn(e.browser(), "alice", "alice-pw")["sid"])

	// LogoutSID returns while the delivery is in flight, and the
	// provider's mutex is free meanwhile.
	e.p.LogoutSID(sid)
	<-arrived
	_ = e.p.Stats()
	if e.signedIn(e.browser()) {
		t.Fatal("a new browser is signed in")
	}

	done := make(chan struct{})
	var waiters atomic.Int32
	for range 2 {
		go func() {
			e.p.WaitBackchannel()
			if waiters.Add(1) == 2 {
				close(done)
			}
		}()
	}
	select {
	case <-done:
		t.Fatal("WaitBackchannel returned while a delivery was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	if n := len(e.p.BackchannelDeliveries()); n != 0 {
		t.Errorf("%d deliveries recorded before the delivery finished", n)
	}
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WaitBackchannel did not return")
	}
	if d := e.p.BackchannelDeliveries(); len(d) != 1 || d[0].Status != 200 {
		t.Errorf("deliveries %+v", d)
	}
}

func TestAccountPage(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.get(e.browser(), e.p.Issuer()+"/account")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Not signed in at the provider") || strings.Contains(body, "<form") {
		t.Errorf("signed out: %d\n%s", resp.StatusCode, body)
	}

	b := e.browser()
	sid := str(e.signIn(b, "alice", "alice-pw")["sid"])
	resp, body = e.get(b, e.p.Issuer()+"/account")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{
		Banner, `id="username">alice<`, `id="sid">` + sid + `<`,
		`<form method="post" action="/end_session">`, `<form method="post" action="/logout_all">`,
		`id="logout-all"`, "Sign out everywhere", "Sign out of this browser",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("account page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("account page has a script")
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q", csp)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q", got)
	}

	// Its sign-out form ends this browser's session.
	resp, err := b.PostForm(e.p.Issuer()+"/end_session", nil)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if got := sidsOf(t, e.logoutTokens()); !cmp.Equal(got, []string{sid}) {
		t.Errorf("logout token sids %q, want [%q]", got, sid)
	}
}

func TestLogoutAll(t *testing.T) {
	e := newEnv(t, nil)
	b1, b2, b3 := e.browser(), e.browser(), e.browser()
	sid1 := str(e.signIn(b1, "alice", "alice-pw")["sid"])
	sid2 := str(e.signIn(b2, "alice", "alice-pw")["sid"])
	e.signIn(b3, "bob", "bob-pw")

	// A cross-site form post is refused.
	req, _ := http.NewRequest(http.MethodPost, e.p.Issuer()+"/logout_all", strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := b1.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site logout_all: %d, want 403", resp.StatusCode)
	}
	if got := e.logoutTokens(); len(got) != 0 || !e.signedIn(b1) {
		t.Fatalf("cross-site logout_all sent %d logout tokens", len(got))
	}

	// The account page's form: back to the account page, signed out.
	req, _ = http.NewRequest(http.MethodPost, e.p.Issuer()+"/logout_all", strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = b1.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/account" || !strings.Contains(body, "Not signed in at the provider") {
		t.Errorf("after logout_all: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	got := sidsOf(t, e.logoutTokens())
	if len(got) != 2 || !strings.Contains(strings.Join(got, " "), sid1) || !strings.Contains(strings.Join(got, " "), sid2) {
		t.Errorf("logout token sids %q, want %q and %q", got, sid1, sid2)
	}
	if _, body := e.get(b2, e.p.Issuer()+"/account"); !strings.Contains(body, "Not signed in at the provider") {
		t.Error("the other browser is still signed in")
	}
	if _, body := e.get(b3, e.p.Issuer()+"/account"); !strings.Contains(body, `id="username">bob<`) {
		t.Error("bob was signed out")
	}

	// Without a session it just returns to the account page.
	resp, err = b1.PostForm(e.p.Issuer()+"/logout_all", nil)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/account" {
		t.Errorf("signed-out logout_all: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	if got := e.logoutTokens(); len(got) != 0 {
		t.Errorf("%d logout tokens without a session", len(got))
	}
}
