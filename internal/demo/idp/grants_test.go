package idp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCodeGrantErrors(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name       string
		mutate     func(form url.Values)
		id, secret string
		wantStatus int
		wantError  string
	}{
		{"bad verifier", func(f url.Values) { f.Set("code_verifier", strings.Repeat("a", 43)) }, webID, webSecret, 400, "invalid_grant"},
		{"short verifier", func(f url.Values) { f.Set("code_verifier", "short") }, webID, webSecret, 400, "invalid_grant"},
		{"no verifier", func(f url.Values) { f.Del("code_verifier") }, webID, webSecret, 400, "invalid_grant"},
		{"other redirect_uri", func(f url.Values) { f.Set("redirect_uri", rpOrigin+"/other") }, webID, webSecret, 400, "invalid_grant"},
		{"unknown code", func(f url.Values) { f.Set("code", "nope") }, webID, webSecret, 400, "invalid_grant"},
		{"other client", nil, apiID, apiSecret, 400, "invalid_grant"},
		{"wrong secret", nil, webID, "wrong", 401, "invalid_client"},
		{"no client auth", nil, "", "", 401, "invalid_client"},
		{"unknown grant type", func(f url.Values) { f.Set("grant_type", "password") }, webID, webSecret, 400, "unsupported_grant_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ap := e.authParams("openid")
			q := e.login(e.browser(), ap)
			form := url.Values{
				"grant_type": {"authorization_code"}, "code": {q.Get("code")},
				"redirect_uri": {redirectURI}, "code_verifier": {ap.verifier},
			}
			if tc.mutate != nil {
				tc.mutate(form)
			}
			before := e.p.Stats().FailedGrants
			status, body := e.post("/token", form, tc.id, tc.secret)
			wantError(t, status, body, tc.wantStatus, tc.wantError)
			if got := e.p.Stats().FailedGrants; got != before+1 {
				t.Errorf("FailedGrants %d, want %d", got, before+1)
			}
		})
	}
}

func TestCodeGrantBurnsCodeOnFailure(t *testing.T) {
	e := newEnv(t, nil)
	ap := e.authParams("openid")
	q := e.login(e.browser(), ap)
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {strings.Repeat("b", 43)},
	}
	status, body := e.token(form)
	wantError(t, status, body, 400, "invalid_grant")
	form.Set("code_verifier", ap.verifier)
	status, body = e.token(form)
	wantError(t, status, body, 400, "invalid_grant")
}

func TestClientSecretPost(t *testing.T) {
	e := newEnv(t, nil)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {webID}, "client_secret": {webSecret}}
	status, body := e.post("/token", form, "", "")
	if status != http.StatusOK {
		t.Fatalf("client_secret_post: %d %v", status, body)
	}
	status, body = e.post("/token", form, webID, webSecret)
	wantError(t, status, body, 400, "invalid_request")
}

func TestTokenResponseHeaders(t *testing.T) {
	e := newEnv(t, nil)
	req, _ := http.NewRequest(http.MethodPost, e.p.Issuer()+"/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(apiID, apiSecret)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got %d %v", resp.StatusCode, resp.Header)
	}

	resp, err = e.srv.Client().Get(e.p.Issuer() + "/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /token: %d", resp.StatusCode)
	}
}

func TestCodeReuseRevokesTokens(t *testing.T) {
	e := newEnv(t, nil)
	ap := e.authParams("openid offline_access")
	q := e.login(e.browser(), ap)
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {ap.verifier},
	}
	status, first := e.token(form)
	if status != http.StatusOK {
		t.Fatalf("first use: %d %v", status, first)
	}
	status, body := e.token(form)
	wantError(t, status, body, 400, "invalid_grant")

	at, rt := str(first["access_token"]), str(first["refresh_token"])
	if !e.p.IsRevoked(at) || !e.p.IsRevoked(rt) {
		t.Errorf("IsRevoked access %t refresh %t, want both", e.p.IsRevoked(at), e.p.IsRevoked(rt))
	}
	if _, err := e.p.VerifyAccessToken(at); err == nil {
		t.Error("access token still verifies")
	}
	status, body = e.refresh(rt, nil)
	wantError(t, status, body, 400, "invalid_grant")
}

func TestRefresh(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		rotate, reuseDetection bool
	}{
		{"no rotation", false, false},
		{"rotation", true, false},
		{"rotation with reuse detection", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				o.RotateRefreshTokens = tc.rotate
				o.ReuseDetection = tc.reuseDetection
			})
			first := e.codeTokens("openid profile offline_access")
			rt1 := str(first["refresh_token"])
			idClaims := claimsOf(t, str(first["id_token"]))

			status, second := e.refresh(rt1, nil)
			if status != http.StatusOK {
				t.Fatalf("refresh: %d %v", status, second)
			}
			rt2, rotated := second["refresh_token"].(string)
			if rotated != tc.rotate || rt2 == rt1 {
				t.Fatalf("refresh_token in response: %t, want %t", rotated, tc.rotate)
			}
			id2 := claimsOf(t, str(second["id_token"]))
			for _, k := range []string{"sub", "sid", "auth_time", "aud", "azp", "name"} {
				if !cmp.Equal(id2[k], idClaims[k]) {
					t.Errorf("refreshed ID token %s = %v, want %v", k, id2[k], idClaims[k])
				}
			}
			if _, ok := id2["nonce"]; ok {
				t.Error("refreshed ID token has a nonce")
			}
			if got := e.p.Stats().RefreshGrants; got != 1 {
				t.Errorf("RefreshGrants %d", got)
			}

			// Present the first refresh token again.
			status, body := e.refresh(rt1, nil)
			if !tc.rotate {
				if status != http.StatusOK {
					t.Fatalf("reusing a non-rotated token: %d %v", status, body)
				}
				return
			}
			wantError(t, status, body, 400, "invalid_grant")
			status, body = e.refresh(rt2, nil)
			if tc.reuseDetection {
				wantError(t, status, body, 400, "invalid_grant")
				for _, tok := range []string{rt1, rt2, str(first["access_token"]), str(second["access_token"])} {
					if !e.p.IsRevoked(tok) {
						t.Errorf("token of the revoked family is not revoked")
					}
				}
			} else if status != http.StatusOK {
				t.Errorf("newest token after a reuse without detection: %d %v", status, body)
			}
		})
	}
}

func TestRefreshScopeAndResource(t *testing.T) {
	e := newEnv(t, nil)
	rt := str(e.codeTokens("openid profile offline_access")["refresh_token"])
	for _, tc := range []struct {
		name      string
		extra     url.Values
		wantError string
		wantAud   any
		wantScope string
		wantID    bool
	}{
		{"default", nil, "", webID, "openid profile offline_access", true},
		{"narrower scope", url.Values{"scope": {"openid"}}, "", webID, "openid", true},
		{"no openid", url.Values{"scope": {"profile"}}, "", webID, "profile", false},
		{"wider scope", url.Values{"scope": {"openid email"}}, "invalid_scope", nil, "", false},
		{"resource", url.Values{"resource": {"https://orders.test/"}}, "", "https://orders.test/", "openid profile offline_access", true},
		{"two resources", url.Values{"resource": {"https://a.test/", "https://b.test/"}}, "", []any{"https://a.test/", "https://b.test/"}, "openid profile offline_access", true},
		{"bad resource", url.Values{"resource": {"/relative"}}, "invalid_target", nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.refresh(rt, tc.extra)
			if tc.wantError != "" {
				wantError(t, status, body, 400, tc.wantError)
				return
			}
			if status != http.StatusOK {
				t.Fatalf("%d %v", status, body)
			}
			at, err := e.p.VerifyAccessToken(str(body["access_token"]))
			if err != nil {
				t.Fatal(err)
			}
			if !cmp.Equal(at["aud"], tc.wantAud) || at["scope"] != tc.wantScope || body["scope"] != tc.wantScope {
				t.Errorf("aud %v scope %v, want %v %q", at["aud"], at["scope"], tc.wantAud, tc.wantScope)
			}
			if _, ok := body["id_token"]; ok != tc.wantID {
				t.Errorf("id_token present %t, want %t", ok, tc.wantID)
			}
		})
	}
}

func TestRefreshOtherClient(t *testing.T) {
	e := newEnv(t, nil)
	rt := str(e.codeTokens("openid offline_access")["refresh_token"])
	status, body := e.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, apiID, apiSecret)
	wantError(t, status, body, 400, "invalid_grant")
	if status, body := e.refresh(rt, nil); status != http.StatusOK {
		t.Errorf("owner's refresh after another client tried: %d %v", status, body)
	}
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name    string
		form    url.Values
		wantAud any
	}{
		{"default audience", url.Values{"scope": {"orders.read orders.write"}}, apiID},
		{"resource", url.Values{"resource": {"https://orders.test/"}, "scope": {"orders.read"}}, "https://orders.test/"},
		{"audience", url.Values{"audience": {"orders"}}, "orders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("grant_type", "client_credentials")
			status, body := e.post("/token", tc.form, apiID, apiSecret)
			if status != http.StatusOK {
				t.Fatalf("%d %v", status, body)
			}
			for _, k := range []string{"refresh_token", "id_token"} {
				if _, ok := body[k]; ok {
					t.Errorf("response has %s", k)
				}
			}
			at, err := e.p.VerifyAccessToken(str(body["access_token"]))
			if err != nil {
				t.Fatal(err)
			}
			if at["sub"] != apiID || at["client_id"] != apiID || !cmp.Equal(at["aud"], tc.wantAud) {
				t.Errorf("claims %v", at)
			}
			if got, want := str(at["scope"]), tc.form.Get("scope"); got != want {
				t.Errorf("scope %q, want %q", got, want)
			}
		})
	}
	if got := e.p.Stats().ClientCredentialsGrants; got != 3 {
		t.Errorf("ClientCredentialsGrants %d", got)
	}
}

func TestTokenExchange(t *testing.T) {
	e := newEnv(t, nil)
	user := e.codeTokens("openid offline_access")
	subject := str(user["access_token"])
	exchange := func(id, secret, token string, extra url.Values) (int, map[string]any) {
		form := url.Values{
			"grant_type":         {GrantTypeTokenExchange},
			"subject_token":      {token},
			"subject_token_type": {TokenTypeAccessToken},
		}
		for k, v := range extra {
			form[k] = v
		}
		return e.post("/token", form, id, secret)
	}

	status, body := exchange(webID, webSecret, subject, url.Values{"audience": {"orders-api"}, "scope": {"orders.read"}})
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, body)
	}
	if body["issued_token_type"] != TokenTypeAccessToken || body["token_type"] != "Bearer" || body["expires_in"] == nil {
		t.Errorf("response %v", body)
	}
	at, err := e.p.VerifyAccessToken(str(body["access_token"]))
	if err != nil {
		t.Fatal(err)
	}
	subjectClaims := claimsOf(t, subject)
	for k, want := range map[string]any{
		"sub": "u-alice", "aud": "orders-api", "scope": "orders.read", "client_id": webID,
		"act": map[string]any{"sub": webID}, "sid": subjectClaims["sid"], "role": "admin",
	} {
		if !cmp.Equal(at[k], want) {
			t.Errorf("exchanged %s = %v, want %v", k, at[k], want)
		}
	}

	for _, tc := range []struct {
		name       string
		id, secret string
		token      string
		extra      url.Values
		wantError  string
	}{
		{"garbage subject", webID, webSecret, "not-a-token", nil, "invalid_grant"},
		{"ID token as subject", webID, webSecret, str(user["id_token"]), nil, "invalid_grant"},
		{"refresh token as subject", webID, webSecret, str(user["refresh_token"]), nil, "invalid_grant"},
		{"another client's token", apiID, apiSecret, subject, nil, "invalid_grant"},
		{"wrong subject type", webID, webSecret, subject, url.Values{"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}, "invalid_request"},
		{"actor token", webID, webSecret, subject, url.Values{"actor_token": {subject}, "actor_token_type": {TokenTypeAccessToken}}, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := exchange(tc.id, tc.secret, tc.token, tc.extra)
			wantError(t, status, body, 400, tc.wantError)
		})
	}

	// Exchanged tokens belong to the user's grant: revoking it revokes them.
	if status, _ := e.post("/revoke", url.Values{"token": {str(user["refresh_token"])}}, webID, webSecret); status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	if !e.p.IsRevoked(str(body["access_token"])) {
		t.Error("exchanged token survives its grant")
	}
	status, body = exchange(webID, webSecret, subject, nil)
	wantError(t, status, body, 400, "invalid_grant")
	if got := e.p.Stats().TokenExchangeGrants; got != 1 {
		t.Errorf("TokenExchangeGrants %d", got)
	}
}

func TestRevoke(t *testing.T) {
	e := newEnv(t, nil)
	tokens := e.codeTokens("openid offline_access")
	at, rt := str(tokens["access_token"]), str(tokens["refresh_token"])

	for _, tc := range []struct {
		name       string
		form       url.Values
		id, secret string
		wantStatus int
	}{
		{"unknown token", url.Values{"token": {"nope"}}, webID, webSecret, 200},
		{"other client's token", url.Values{"token": {rt}}, apiID, apiSecret, 200},
		{"no token", url.Values{}, webID, webSecret, 400},
		{"no client auth", url.Values{"token": {rt}}, "", "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _ := e.post("/revoke", tc.form, tc.id, tc.secret)
			if status != tc.wantStatus {
				t.Errorf("status %d, want %d", status, tc.wantStatus)
			}
		})
	}
	if e.p.IsRevoked(rt) {
		t.Fatal("revoked by a failed or foreign request")
	}

	status, _ := e.post("/revoke", url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}, webID, webSecret)
	if status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	if !e.p.IsRevoked(rt) || !e.p.IsRevoked(at) {
		t.Errorf("IsRevoked refresh %t access %t", e.p.IsRevoked(rt), e.p.IsRevoked(at))
	}
	status, body := e.refresh(rt, nil)
	wantError(t, status, body, 400, "invalid_grant")
	if got := e.p.Stats().Revocations; got != 3 {
		t.Errorf("Revocations %d, want 3", got)
	}

	// An access token alone.
	other := e.codeTokens("openid offline_access")
	status, _ = e.post("/revoke", url.Values{"token": {str(other["access_token"])}}, webID, webSecret)
	if status != http.StatusOK {
		t.Fatalf("revoke access token: %d", status)
	}
	if _, err := e.p.VerifyAccessToken(str(other["access_token"])); err == nil {
		t.Error("revoked access token verifies")
	}
	if status, body := e.refresh(str(other["refresh_token"]), nil); status != http.StatusOK {
		t.Errorf("refresh after revoking only the access token: %d %v", status, body)
	}
}

func TestUserinfo(t *testing.T) {
	e := newEnv(t, nil)
	tokens := e.codeTokens("openid email")
	cc := func() string {
		_, body := e.post("/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}, apiID, apiSecret)
		return str(body["access_token"])
	}()
	for _, tc := range []struct {
		name       string
		auth       string
		wantStatus int
		want       map[string]any
	}{
		{"ok", "Bearer " + str(tokens["access_token"]), 200, map[string]any{
			"sub": "u-alice", "email": "alice@example.test", "email_verified": true, "role": "admin", "groups": []any{"staff", "ops"},
		}},
		{"ID token", "Bearer " + str(tokens["id_token"]), 401, nil},
		{"client token", "Bearer " + cc, 401, nil},
		{"none", "", 401, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.p.Issuer()+"/userinfo", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.want == nil {
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate")
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("userinfo (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RefreshTokenTTL = time.Hour })

	ap := e.authParams("openid offline_access")
	q := e.login(e.browser(), ap)
	e.clock.Advance(61 * time.Second)
	status, body := e.token(url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {ap.verifier},
	})
	wantError(t, status, body, 400, "invalid_grant")

	tokens := e.codeTokens("openid offline_access")
	if got := tokens["expires_in"]; got != float64(300) {
		t.Errorf("expires_in %v, want 300", got)
	}
	e.clock.Advance(5 * time.Minute)
	if _, err := e.p.VerifyAccessToken(str(tokens["access_token"])); err == nil {
		t.Error("expired access token verifies")
	}
	if status, body := e.refresh(str(tokens["refresh_token"]), nil); status != http.StatusOK {
		t.Fatalf("refresh within its TTL: %d %v", status, body)
	}
	e.clock.Advance(time.Hour)
	status, body = e.refresh(str(tokens["refresh_token"]), nil)
	wantError(t, status, body, 400, "invalid_grant")

	// Pruning forgets what expired.
	e.p.mu.Lock()
	e.p.lastPrune = time.Time{}
	e.p.pruneLocked(e.clock.Now())
	n := len(e.p.codes) + len(e.p.refresh) + len(e.p.access) + len(e.p.grants) + len(e.p.requests)
	e.p.mu.Unlock()
	if n != 0 {
		t.Errorf("%d entries left after pruning", n)
	}
}

func TestConcurrentRefresh(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RotateRefreshTokens = true })
	rt := str(e.codeTokens("openid offline_access")["refresh_token"])
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Go(func() {
			status, _ := e.refresh(rt, nil)
			mu.Lock()
			defer mu.Unlock()
			if status == http.StatusOK {
				ok++
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Errorf("%d concurrent refreshes of one rotated token succeeded, want 1", ok)
	}
}
