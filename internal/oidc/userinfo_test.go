package oidc_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/hostile"
)

func withUserInfo(o *oidc.Options) { o.UserInfo = true }

// signedUserInfo makes p answer userinfo with a JWS of the default claims
// plus iss and aud, changed by edit.
func signedUserInfo(t *testing.T, p *hostile.Provider, edit idEdit) {
	t.Helper()
	p.UserInfoSigned = false
	p.UserInfo = func(w http.ResponseWriter, r *http.Request) {
		c := p.UserInfoDefaults()
		c["iss"], c["aud"] = p.Issuer, p.ClientID
		tk := hostile.Token{Claims: c}
		if edit != nil {
			edit(p, &tk, c)
		}
		w.Header().Set("Content-Type", "application/jwt")
		_, _ = w.Write([]byte(p.Mint(t, tk)))
	}
}

func TestUserInfoAccepted(t *testing.T) {
	p := hostile.New(t)
	tests := []struct {
		name  string
		setup func(t *testing.T)
		email string
	}{
		{"json", nil, hostile.DefaultEmail},
		{"json with charset", func(t *testing.T) {
			p.UserInfo = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				_, _ = w.Write([]byte(`{"sub":"` + hostile.DefaultSubject + `","email":"charset@example.com"}`))
			}
		}, "charset@example.com"},
		{"signed with iss and aud", func(t *testing.T) { signedUserInfo(t, p, nil) }, hostile.DefaultEmail},
		{"signed ES256", func(t *testing.T) {
			signedUserInfo(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.Alg = "ES256" })
		}, hostile.DefaultEmail},
		{"signed with aud among several", func(t *testing.T) {
			signedUserInfo(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
				c["aud"] = []string{"other", p.ClientID}
			})
		}, hostile.DefaultEmail},
		{"signed without iss and aud", func(t *testing.T) {
			p.UserInfoSigned = true // the default claims as they are
		}, hostile.DefaultEmail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.Reset()
			if tt.setup != nil {
				tt.setup(t)
			}
			c := discovered(t, p, withUserInfo)
			tok, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce)
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if got := tok.Claims["email"]; got != tt.email {
				t.Errorf("email claim %v, want %s", got, tt.email)
			}
			if got, want := p.UserInfoBearers(), []string{tok.AccessToken}; !slices.Equal(got, want) {
				t.Errorf("userinfo bearers %q, want the new access token %q", got, want)
			}
			if tok.UserInfoMissed {
				t.Error("UserInfoMissed set after a good answer")
			}
			untouched(t, p)
		})
	}
}

// TestUserInfoMerge: the userinfo answer's claims win, except the ones that
// describe the ID token, which the answer can neither change nor add.
func TestUserInfoMerge(t *testing.T) {
	p := hostile.New(t)
	idClaims := p.IDClaims()
	idClaims["email"] = "old@example.com"
	idClaims["name"] = "Alice"
	p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(p.Mint(t, hostile.Token{Claims: idClaims})) }
	p.UserInfoClaims = func(string) map[string]any {
		return map[string]any{
			"sub": hostile.DefaultSubject, "email": "new@example.com", "groups": []any{"admins"},
			"iss": "https://evil.example", "aud": "evil", "sid": "evil-sid", "exp": 1, "iat": 1,
			"nonce": "evil-nonce", "auth_time": 1, "azp": "evil",
		}
	}
	c := discovered(t, p, withUserInfo)
	tok, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	want := map[string]any{
		"email": "new@example.com", "name": "Alice", "groups": []any{"admins"},
		"iss": p.Issuer, "aud": p.ClientID, "sub": hostile.DefaultSubject, "sid": idClaims["sid"],
		"nonce": hostile.DefaultNonce,
	}
	for k, v := range want {
		if got := tok.Claims[k]; !equalJSON(got, v) {
			t.Errorf("claim %s = %v, want %v", k, got, v)
		}
	}
	for _, k := range []string{"auth_time", "azp"} {
		if v, ok := tok.Claims[k]; ok {
			t.Errorf("claim %s = %v taken from userinfo, want it left out", k, v)
		}
	}
	for _, k := range []string{"exp", "iat"} {
		if got, want := tok.Claims[k], float64(idClaims[k].(int64)); got != want {
			t.Errorf("claim %s = %v, want the id token's %v", k, got, want)
		}
	}
	if tok.Subject != hostile.DefaultSubject || tok.SID != idClaims["sid"] {
		t.Errorf("subject %q sid %q changed by userinfo", tok.Subject, tok.SID)
	}
}

func equalJSON(a, b any) bool {
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok {
		return slices.Equal(as, bs)
	}
	return a == b
}

// TestUserInfoRefusedAtLogin: every failed or untrusted userinfo answer
// fails the code exchange, without quoting the answer or a token.
func TestUserInfoRefusedAtLogin(t *testing.T) {
	p := hostile.New(t)
	tests := map[string]struct {
		setup     func(t *testing.T)
		untrusted bool
	}{
		"another sub": {func(t *testing.T) {
			p.UserInfoClaims = func(string) map[string]any { return map[string]any{"sub": "mallory", "email": "m@example.com"} }
		}, true},
		"no sub": {func(t *testing.T) {
			p.UserInfoClaims = func(string) map[string]any { return map[string]any{"email": "m@example.com"} }
		}, false},
		"sub not a string": {func(t *testing.T) {
			p.UserInfoClaims = func(string) map[string]any { return map[string]any{"sub": 42} }
		}, false},
		"500": {func(t *testing.T) { p.UserInfo = hostile.Status(http.StatusInternalServerError, nil) }, false},
		"401": {func(t *testing.T) {
			p.UserInfo = hostile.Status(http.StatusUnauthorized, map[string]any{"error": "invalid_token"})
		}, false},
		"redirect": {func(t *testing.T) { p.UserInfo = hostile.Redirect(p.Attacker.URL + "/userinfo") }, false},
		"not json": {func(t *testing.T) {
			p.UserInfo = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte("<html>" + hostile.Canary))
			}
		}, false},
		"json array": {func(t *testing.T) {
			p.UserInfo = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`[{"sub":"` + hostile.DefaultSubject + `"}]`))
			}
		}, false},
		"html": {func(t *testing.T) {
			p.UserInfo = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte(`{"sub":"` + hostile.DefaultSubject + `","x":"` + hostile.Canary + `"}`))
			}
		}, false},
		"huge": {func(t *testing.T) { p.UserInfo = hostile.Huge(tenMiB) }, false},
		"hang": {func(t *testing.T) { p.UserInfo = p.Hang }, false},
		"signed by another issuer": {func(t *testing.T) {
			signedUserInfo(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["iss"] = p.Attacker.URL })
		}, true},
		"signed for another client": {func(t *testing.T) {
			signedUserInfo(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["aud"] = "someone-else" })
		}, true},
		"signed for another subject": {func(t *testing.T) {
			signedUserInfo(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["sub"] = "mallory" })
		}, true},
		"signed, payload not an object": {func(t *testing.T) {
			p.UserInfo = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/jwt")
				_, _ = w.Write([]byte(signPayload(t, p, `"`+hostile.DefaultSubject+`"`)))
			}
		}, true},
		"encrypted": {func(t *testing.T) {
			p.UserInfo = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/jwt")
				_, _ = w.Write([]byte("eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d"))
			}
		}, true},
	}
	for name, edit := range signatureAttacks() {
		tests["signed, "+name] = struct {
			setup     func(t *testing.T)
			untrusted bool
		}{func(t *testing.T) { signedUserInfo(t, p, edit) }, true}
	}
	for name, edit := range headerKeyAttacks() {
		tests["signed, "+name] = struct {
			setup     func(t *testing.T)
			untrusted bool
		}{func(t *testing.T) { signedUserInfo(t, p, edit) }, true}
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p.Reset()
			tt.setup(t)
			var access string
			p.TokenJSON = func(url.Values) map[string]any {
				r := p.TokenResponse(mintID(t, p, nil))
				access = r["access_token"].(string)
				return r
			}
			c := discovered(t, p, withUserInfo, withTimeout(hangTimeout))
			tok, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce)
			if err == nil {
				t.Fatalf("exchange succeeded with claims %v", tok.Claims)
			}
			if !strings.Contains(err.Error(), "userinfo") {
				t.Errorf("error %q does not say userinfo failed", err)
			}
			if got := errors.Is(err, oidc.ErrUntrusted); got != tt.untrusted {
				t.Errorf("errors.Is(%q, ErrUntrusted) = %v, want %v", err, got, tt.untrusted)
			}
			noLeak(t, err, access, "mallory", "someone-else")
			if n := p.Hits(hostile.PathRevocation); n != 2 {
				t.Errorf("%d revocations, want the refused login's access and refresh tokens revoked", n)
			}
			untouched(t, p)
		})
	}
}

// signPayload is an RS256 JWS of payload, which need not be a JSON
// object, signed with p's RSA key.
func signPayload(t *testing.T, p *hostile.Provider, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	input := enc([]byte(`{"alg":"RS256","kid":"`+p.RSA.ID+`"}`)) + "." + enc([]byte(payload))
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.RSA.Signer.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc(sig)
}

func TestUserInfoOff(t *testing.T) {
	p := hostile.New(t)
	p.UserInfo = hostile.Status(http.StatusInternalServerError, nil)
	c := discovered(t, p)
	tok, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if _, ok := tok.Claims["email"]; ok {
		t.Error("email claim without userinfo")
	}
	if n := p.Hits(hostile.PathUserInfo); n != 0 {
		t.Errorf("userinfo called %d times with userinfo off", n)
	}
}

func TestUserInfoDiscovery(t *testing.T) {
	p := hostile.New(t)
	tests := []struct {
		name     string
		userInfo bool
		edit     func(doc map[string]any)
		want     string // "" means discovery succeeds
	}{
		{"no endpoint, userinfo off", false, func(doc map[string]any) { delete(doc, "userinfo_endpoint") }, ""},
		{"bad endpoint, userinfo off", false, func(doc map[string]any) { doc["userinfo_endpoint"] = "ftp://x" }, ""},
		{"no endpoint", true, func(doc map[string]any) { delete(doc, "userinfo_endpoint") }, "metadata has no userinfo_endpoint, which oidc.userinfo: true needs"},
		{"relative endpoint", true, func(doc map[string]any) { doc["userinfo_endpoint"] = "/userinfo" }, "userinfo_endpoint: scheme"},
		{"user info in endpoint", true, func(doc map[string]any) { doc["userinfo_endpoint"] = "http://u:p@127.0.0.1/userinfo" }, "userinfo_endpoint: not an absolute URL without user info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.Reset()
			p.EditDiscovery = tt.edit
			opts := options(p)
			opts.UserInfo = tt.userInfo
			c := oidc.New(opts)
			err := c.Discover(t.Context())
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("discover: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("discover: %v, want an error saying %q", err, tt.want)
			case tt.want != "" && c.Ready():
				t.Error("ready after a refused discovery")
			}
		})
	}
}

// TestUserInfoOnRefresh: a refresh that brings a new ID token fetches
// userinfo again; another sub or a forged answer ends the session
// (ErrUntrusted); an unavailable endpoint keeps the refreshed tokens and
// says so.
func TestUserInfoOnRefresh(t *testing.T) {
	p := hostile.New(t)
	tests := []struct {
		name      string
		idToken   bool
		setup     func(t *testing.T)
		untrusted bool // else the refresh succeeds
		missed    bool
		email     any // wanted email claim; nil means none
		calls     int
	}{
		{"json", true, nil, false, false, hostile.DefaultEmail, 1},
		{"signed", true, func(t *testing.T) { signedUserInfo(t, p, nil) }, false, false, hostile.DefaultEmail, 1},
		{"no new id token", false, nil, false, false, nil, 0},
		{"another sub", true, func(t *testing.T) {
			p.UserInfoClaims = func(string) map[string]any { return map[string]any{"sub": "mallory"} }
		}, true, false, nil, 1},
		{"bad signature", true, func(t *testing.T) {
			signedUserInfo(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.BadSignature = true })
		}, true, false, nil, 1},
		{"signed by the attacker", true, func(t *testing.T) {
			signedUserInfo(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.Key = p.Attacker.Key })
		}, true, false, nil, 1},
		{"500", true, func(t *testing.T) { p.UserInfo = hostile.Status(http.StatusInternalServerError, nil) }, false, true, nil, 1},
		{"503", true, func(t *testing.T) { p.UserInfo = hostile.Status(http.StatusServiceUnavailable, nil) }, false, true, nil, 1},
		{"hang", true, func(t *testing.T) { p.UserInfo = p.Hang }, false, true, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.Reset()
			if tt.setup != nil {
				tt.setup(t)
			}
			var resp map[string]any
			p.TokenJSON = func(url.Values) map[string]any {
				id := ""
				if tt.idToken {
					id = mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "nonce") })
				}
				resp = p.TokenResponse(id)
				return resp
			}
			c := discovered(t, p, withUserInfo, withTimeout(hangTimeout))
			tok, err := c.Refresh(t.Context(), "rt-old", hostile.DefaultSubject, oidc.TokenParams{})
			if n := p.Hits(hostile.PathUserInfo); n != tt.calls {
				t.Errorf("userinfo called %d times, want %d", n, tt.calls)
			}
			if tt.untrusted {
				if !errors.Is(err, oidc.ErrUntrusted) {
					t.Fatalf("refresh: %v, want ErrUntrusted", err)
				}
				noLeak(t, err, resp["access_token"].(string), resp["refresh_token"].(string))
				if n := p.Hits(hostile.PathRevocation); n != 2 {
					t.Errorf("%d revocations, want the refused answer's access and refresh tokens revoked", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if tok.AccessToken != resp["access_token"] || tok.RefreshToken != resp["refresh_token"] {
				t.Error("refresh did not return the provider's new tokens")
			}
			if tok.UserInfoMissed != tt.missed {
				t.Errorf("UserInfoMissed %v, want %v", tok.UserInfoMissed, tt.missed)
			}
			if got := tok.Claims["email"]; got != tt.email {
				t.Errorf("email claim %v, want %v", got, tt.email)
			}
		})
	}
}
