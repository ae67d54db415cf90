package oidc_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/hostile"
)

// These tests drive the real Client against hostile.Provider, a provider
// that lies on demand. Every refused case also checks that the error does
// not quote a token, the code, the client secret or a provider body, and
// that nothing was sent to the attacker's server.

const (
	clientTimeout = 5 * time.Second
	// hangTimeout is the client timeout of cases where the provider never
	// answers; the tests check the call fails, not how fast.
	hangTimeout = 500 * time.Millisecond
	tenMiB      = 10 << 20
)

type clientOpt func(*oidc.Options)

func withTimeout(d time.Duration) clientOpt {
	return func(o *oidc.Options) { o.HTTPClient = oidc.NewHTTPClient(d) }
}

func withClock(now func() time.Time) clientOpt {
	return func(o *oidc.Options) { o.Now = now }
}

func options(p *hostile.Provider, opts ...clientOpt) oidc.Options {
	o := oidc.Options{
		Issuer:       p.Issuer,
		ClientID:     p.ClientID,
		ClientSecret: p.ClientSecret,
		RedirectURL:  "http://127.0.0.1:1/bff/callback",
		Scopes:       []string{"openid", "offline_access"},
		HTTPClient:   oidc.NewHTTPClient(clientTimeout),
		ClockSkew:    oidc.DefaultClockSkew,
	}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// discovered returns a client that has discovered p.
func discovered(t *testing.T, p *hostile.Provider, opts ...clientOpt) *oidc.Client {
	t.Helper()
	c := oidc.New(options(p, opts...))
	if err := c.Discover(t.Context()); err != nil {
		t.Fatalf("discover: %v", err)
	}
	return c
}

func random(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// noLeak fails when err's message quotes any of secrets, the provider's
// Canary or the client secret. A JWS secret is also checked by its parts.
func noLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	all := append([]string{hostile.Canary, hostile.DefaultClientSecret}, secrets...)
	for _, s := range secrets {
		if parts := strings.Split(s, "."); len(parts) == 3 {
			all = append(all, parts...)
		}
	}
	for _, s := range all {
		if len(s) >= 8 && strings.Contains(msg, s) {
			t.Errorf("error %q quotes a secret or a provider body (%.20q…)", msg, s)
		}
	}
}

// untouched fails when the attacker's server received anything.
func untouched(t *testing.T, p *hostile.Provider) {
	t.Helper()
	if n := p.Attacker.Requests(); n != 0 {
		t.Errorf("attacker server got %d requests %q, want 0", n, p.Attacker.Paths())
	}
}

// idEdit changes the token and claims of a valid ID token.
type idEdit func(p *hostile.Provider, tk *hostile.Token, c map[string]any)

func mintID(t *testing.T, p *hostile.Provider, edit idEdit) string {
	t.Helper()
	c := p.IDClaims()
	tk := hostile.Token{Claims: c}
	if edit != nil {
		edit(p, &tk, c)
	}
	return p.Mint(t, tk)
}

func mintLogout(t *testing.T, p *hostile.Provider, edit idEdit) string {
	t.Helper()
	c := p.LogoutClaims()
	tk := hostile.Token{Claims: c}
	if edit != nil {
		edit(p, &tk, c)
	}
	return p.Mint(t, tk)
}

func unix(p *hostile.Provider, d time.Duration) int64 { return p.Now().Add(d).Unix() }

// headerKeyAttacks put attacker key material into the token's header and
// sign with the attacker's key: the client must use none of it, and must
// not fetch jku or x5u.
func headerKeyAttacks() map[string]idEdit {
	return map[string]idEdit{
		"embedded jwk": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Key = p.Attacker.Key
			tk.Header = map[string]any{"jwk": p.Attacker.Key.JWK()}
		},
		"embedded jwk under the provider's kid": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			jwk := p.Attacker.Key.JWK()
			jwk["kid"] = p.RSA.ID
			tk.Key = p.Attacker.Key
			tk.Header = map[string]any{"kid": p.RSA.ID, "jwk": jwk}
		},
		"jku at the attacker": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Key = p.Attacker.Key
			tk.Header = map[string]any{"jku": p.Attacker.URL + "/jwks.json"}
		},
		"x5u at the attacker": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Key = p.Attacker.Key
			tk.Header = map[string]any{"x5u": p.Attacker.URL + "/cert.pem"}
		},
		"x5c of the attacker": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Key = p.Attacker.Key
			tk.Header = map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(p.Attacker.Cert)}}
		},
	}
}

// signatureAttacks are forged or broken signatures.
func signatureAttacks() map[string]idEdit {
	return map[string]idEdit{
		"alg none": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Alg = "none"
		},
		"alg None": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Alg = "none"
			tk.Header = map[string]any{"alg": "None"}
		},
		"alg none over a real RS256 signature": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Header = map[string]any{"alg": "none"}
		},
		"RS256 bad signature": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.BadSignature = true
		},
		"ES256 bad signature": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Alg = "ES256"
			tk.BadSignature = true
		},
		"HS256 keyed with the RSA public key PEM": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Alg = "HS256"
		},
		"HS256 keyed with the RSA public key DER": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Alg = "HS256"
			tk.HMACKey = p.RSA.PublicDER()
		},
		"HS256 keyed with the client secret": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Alg = "HS256"
			tk.HMACKey = []byte(p.ClientSecret)
		},
		"attacker key under the provider's kid": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Key = p.Attacker.Key
			tk.Header = map[string]any{"kid": p.RSA.ID}
		},
		"attacker key without kid": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Key = p.Attacker.Key
			tk.Header = map[string]any{"kid": nil}
		},
		"attacker key under an unknown kid": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Key = p.Attacker.Key
			tk.Header = map[string]any{"kid": "unknown"}
		},
		"ES256 signature under the RSA key's kid": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Alg = "ES256"
			tk.Header = map[string]any{"kid": p.RSA.ID}
		},
		"PS256 header over an RS256 signature": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Header = map[string]any{"alg": "PS256"}
		},
		"unknown crit extension": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Header = map[string]any{"crit": []string{"x-hostile"}, "x-hostile": true}
		},
		"b64 false": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Header = map[string]any{"crit": []string{"b64"}, "b64": false}
		},
	}
}

func TestExchangeRefusesBadIDTokens(t *testing.T) {
	p := hostile.New(t)
	cases := map[string]idEdit{
		"wrong aud": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["aud"] = "another-client"
		},
		"missing aud": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			delete(c, "aud")
		},
		"aud not a string": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["aud"] = 42
		},
		"extra aud without azp": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["aud"] = []string{p.ClientID, "another-client"}
		},
		"extra aud, azp of another client": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["aud"] = []string{p.ClientID, "another-client"}
			c["azp"] = "another-client"
		},
		"azp of another client": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["azp"] = "another-client"
		},
		"azp not a string": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["azp"] = []string{p.ClientID}
		},
		"wrong iss": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["iss"] = p.Attacker.URL
		},
		"iss with a trailing slash": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["iss"] = p.Issuer + "/"
		},
		"missing iss": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			delete(c, "iss")
		},
		"expired": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["iat"], c["exp"] = unix(p, -10*time.Minute), unix(p, -5*time.Minute)
		},
		"missing exp": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			delete(c, "exp")
		},
		"missing iat": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			delete(c, "iat")
		},
		"iat in the future": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["iat"], c["exp"] = unix(p, time.Hour), unix(p, 2*time.Hour)
		},
		"nbf in the future": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["nbf"] = unix(p, time.Hour)
		},
		"missing sub": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			delete(c, "sub")
		},
		"empty sub": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["sub"] = ""
		},
		"sub not a string": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["sub"] = 42
		},
		"wrong nonce": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["nonce"] = "another-nonce"
		},
		"missing nonce": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			delete(c, "nonce")
		},
		"a logout token": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Claims = p.LogoutClaims()
		},
	}
	for name, e := range signatureAttacks() {
		cases[name] = e
	}
	for name, e := range headerKeyAttacks() {
		cases[name] = e
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			p.Reset()
			raw := mintID(t, p, edit)
			exchangeRefused(t, p, raw)
		})
	}
	t.Run("JWS JSON serialization", func(t *testing.T) {
		p.Reset()
		parts := strings.Split(mintID(t, p, nil), ".")
		b, _ := json.Marshal(map[string]string{"protected": parts[0], "payload": parts[1], "signature": parts[2]})
		exchangeRefused(t, p, string(b))
	})
}

// exchangeRefused has the token endpoint answer raw as the ID token and
// checks that Exchange refuses it, quoting nothing and asking the JWKS at
// most once.
func exchangeRefused(t *testing.T, p *hostile.Provider, raw string) {
	t.Helper()
	resp := p.TokenResponse(raw)
	p.TokenJSON = func(url.Values) map[string]any { return resp }
	c := discovered(t, p)
	code, verifier := random(t, "code-"), random(t, "verifier-")
	got, err := c.Exchange(t.Context(), code, verifier, hostile.DefaultNonce)
	if err == nil {
		t.Fatalf("Exchange accepted the token: subject %q", got.Subject)
	}
	t.Logf("refused: %v", err)
	noLeak(t, err, raw, code, verifier, resp["access_token"].(string), resp["refresh_token"].(string))
	untouched(t, p)
	if n := p.JWKSFetches(); n > 1 {
		t.Errorf("JWKS fetched %d times, want at most 1", n)
	}
}

func TestExchangeAcceptsValidIDTokens(t *testing.T) {
	p := hostile.New(t)
	cases := map[string]idEdit{
		"RS256": nil,
		"ES256": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Alg = "ES256"
		},
		"RS256 without kid": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Header = map[string]any{"kid": nil}
		},
		"extra aud with our azp": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["aud"] = []string{p.ClientID, "another-client"}
			c["azp"] = p.ClientID
		},
		"aud as a one-element array": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["aud"] = []string{p.ClientID}
		},
		"iat within the clock skew": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["iat"] = unix(p, 30*time.Second)
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			p.Reset()
			raw := mintID(t, p, edit)
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
			c := discovered(t, p)
			got, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if got.Subject != hostile.DefaultSubject || got.IDToken != raw || got.RefreshToken == "" {
				t.Errorf("got subject %q, id token %t, refresh token %t; want %q, the minted one, some", got.Subject, got.IDToken == raw, got.RefreshToken != "", hostile.DefaultSubject)
			}
			form := p.TokenForms()[0]
			if form.Get("code") != "code" || form.Get("code_verifier") != "verifier" {
				t.Errorf("token request form %v, want the code and the PKCE verifier", form)
			}
			untouched(t, p)
		})
	}
}

// Exchange checks the nonce it is given; it cannot know whether the same
// nonce was used before. bff keeps each nonce with one login attempt's
// state and deletes it at the callback: that is what stops a replay.
func TestExchangeNonce(t *testing.T) {
	p := hostile.New(t)
	c := discovered(t, p)
	if _, err := c.Exchange(t.Context(), "code", "verifier", ""); err == nil {
		t.Error("Exchange with no expected nonce succeeded; it must not skip the nonce check")
	}
	if n := p.TokenRequests(); n != 0 {
		t.Errorf("token endpoint called %d times without a nonce to check, want 0", n)
	}
	for i := range 2 {
		if _, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce); err != nil {
			t.Fatalf("exchange %d with the same nonce: %v (single use is the caller's job)", i, err)
		}
	}
}

func TestExchangeBadTokenEndpoint(t *testing.T) {
	p := hostile.New(t)
	cases := []struct {
		name    string
		set     func(p *hostile.Provider)
		opts    []clientOpt
		grant   bool // the error is a GrantError
		reached bool // the token endpoint got the request
	}{
		{name: "302 to the attacker", set: func(p *hostile.Provider) {
			p.Token = hostile.Redirect(p.Attacker.URL + "/token")
		}, grant: true, reached: true},
		{name: "307 to the attacker", set: func(p *hostile.Provider) {
			p.Token = func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, p.Attacker.URL+"/token", http.StatusTemporaryRedirect)
			}
		}, grant: true, reached: true},
		{name: "10 MiB body", set: func(p *hostile.Provider) { p.Token = hostile.Huge(tenMiB) }, reached: true},
		{name: "never answers", set: func(p *hostile.Provider) { p.Token = p.Hang }, opts: []clientOpt{withTimeout(hangTimeout)}, reached: true},
		{name: "invalid_grant", set: func(p *hostile.Provider) {
			p.Token = hostile.Status(http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "bad code " + hostile.Canary})
		}, grant: true, reached: true},
		{name: "500 with an HTML body", set: func(p *hostile.Provider) {
			p.Token = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprintf(w, "<h1>%s %s</h1>", hostile.Canary, r.PostForm.Get("code"))
			}
		}, grant: true, reached: true},
		{name: "200 that is not JSON", set: func(p *hostile.Provider) {
			p.Token = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, "%s %s", hostile.Canary, r.PostForm.Get("code"))
			}
		}, reached: true},
		{name: "200 with an error member", set: func(p *hostile.Provider) {
			p.Token = hostile.Status(http.StatusOK, map[string]any{"error": "invalid_grant", "access_token": "x"})
		}, grant: true, reached: true},
		{name: "no id_token", set: func(p *hostile.Provider) {
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse("") }
		}, reached: true},
		{name: "id_token not a string", set: func(p *hostile.Provider) {
			p.TokenJSON = func(url.Values) map[string]any {
				m := p.TokenResponse("")
				m["id_token"] = map[string]any{"alg": "none"}
				return m
			}
		}, reached: true},
		{name: "no access_token", set: func(p *hostile.Provider) {
			p.TokenJSON = func(url.Values) map[string]any {
				m := p.TokenResponse(p.Mint(t, hostile.Token{Claims: p.IDClaims()}))
				delete(m, "access_token")
				return m
			}
		}, reached: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.Reset()
			tc.set(p)
			c := discovered(t, p, tc.opts...)
			code, verifier := random(t, "code-"), random(t, "verifier-")
			_, err := c.Exchange(t.Context(), code, verifier, hostile.DefaultNonce)
			if err == nil {
				t.Fatal("Exchange succeeded")
			}
			var ge *oidc.GrantError
			if isGrant := errors.As(err, &ge); isGrant != tc.grant {
				t.Errorf("error %q: GrantError %t, want %t", err, isGrant, tc.grant)
			}
			if reached := p.TokenRequests() == 1; reached != tc.reached {
				t.Errorf("token endpoint requests %d, want reached %t", p.TokenRequests(), tc.reached)
			}
			noLeak(t, err, code, verifier)
			untouched(t, p)
		})
	}
}

func TestExchangeBadJWKS(t *testing.T) {
	p := hostile.New(t)
	cases := []struct {
		name string
		set  func(p *hostile.Provider)
		opts []clientOpt
	}{
		{"302 to the attacker", func(p *hostile.Provider) { p.JWKS = hostile.Redirect(p.Attacker.URL + "/jwks.json") }, nil},
		{"10 MiB body", func(p *hostile.Provider) { p.JWKS = hostile.Huge(tenMiB) }, nil},
		{"never answers", func(p *hostile.Provider) { p.JWKS = p.Hang }, []clientOpt{withTimeout(hangTimeout)}},
		{"500", func(p *hostile.Provider) { p.JWKS = hostile.Status(http.StatusInternalServerError, nil) }, nil},
		{"not JSON", func(p *hostile.Provider) {
			p.JWKS = func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, hostile.Canary) }
		}, nil},
		{"keys not an array", func(p *hostile.Provider) {
			p.JWKS = hostile.Status(http.StatusOK, map[string]any{"keys": map[string]any{"kty": "RSA"}})
		}, nil},
		{"no keys", func(p *hostile.Provider) { p.Published = nil }, nil},
		{"only unusable keys", func(p *hostile.Provider) { p.Published, p.ExtraJWKs = nil, unusableJWKs(t, p) }, nil},
		{"the provider's keys marked for encryption", func(p *hostile.Provider) {
			p.Published = nil
			for _, k := range []*hostile.Key{p.RSA, p.EC} {
				jwk := k.JWK()
				jwk["use"] = "enc"
				b, _ := json.Marshal(jwk)
				p.ExtraJWKs = append(p.ExtraJWKs, string(b))
			}
		}, nil},
		{"the provider's RSA key listed for ES256", func(p *hostile.Provider) {
			jwk := p.RSA.JWK()
			jwk["alg"] = "ES256"
			b, _ := json.Marshal(jwk)
			p.Published, p.ExtraJWKs = nil, []string{string(b)}
		}, nil},
		{"the provider's RSA key as a symmetric key", func(p *hostile.Provider) {
			// Mint's HS256 default secret is the RSA public key PEM.
			b, _ := json.Marshal(map[string]any{"kty": "oct", "kid": p.RSA.ID, "alg": "HS256", "k": base64.RawURLEncoding.EncodeToString(p.RSA.PublicPEM())})
			p.Published, p.ExtraJWKs = nil, []string{string(b)}
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.Reset()
			tc.set(p)
			raw := mintID(t, p, nil)
			if strings.Contains(tc.name, "symmetric") {
				raw = mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.Alg = "HS256" })
			}
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
			c := discovered(t, p, tc.opts...)
			_, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce)
			if err == nil {
				t.Fatal("Exchange succeeded")
			}
			if n := p.JWKSFetches(); n != 1 && !strings.Contains(tc.name, "symmetric") {
				t.Errorf("JWKS fetched %d times, want 1", n)
			}
			noLeak(t, err, raw)
			untouched(t, p)
		})
	}
	t.Run("a second token within the refetch interval does not fetch again", func(t *testing.T) {
		p.Reset()
		p.JWKS = hostile.Status(http.StatusInternalServerError, nil)
		c := discovered(t, p)
		for range 3 {
			if _, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce); err == nil {
				t.Fatal("Exchange succeeded")
			}
		}
		if n := p.JWKSFetches(); n != 1 {
			t.Errorf("JWKS fetched %d times, want 1", n)
		}
	})
}

// unusableJWKs are JWKS entries a client must skip without failing the set:
// unknown key types and curves, symmetric and encryption keys, an
// unsupported algorithm, a short RSA key, broken members, a private key.
func unusableJWKs(t *testing.T, p *hostile.Provider) []string {
	t.Helper()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallJWK, _ := json.Marshal((&hostile.Key{ID: "small", Alg: "RS256", Signer: small}).JWK())
	return []string{
		`{"kty":"PQC","kid":"pq","alg":"ML-DSA-87","pub":"AAAA"}`,
		`{"kty":"hostile","kid":"x"}`,
		`{"kty":"OKP","crv":"Ed448","kid":"ed448","x":"` + strings.Repeat("A", 76) + `"}`,
		`{"kty":"OKP","crv":"X25519","kid":"x25519","x":"` + strings.Repeat("A", 43) + `"}`,
		`{"kty":"EC","crv":"secp256k1","alg":"ES256K","kid":"k1","x":"` + strings.Repeat("A", 43) + `","y":"` + strings.Repeat("A", 43) + `"}`,
		`{"kty":"oct","kid":"sym","k":"c2VjcmV0"}`,
		`{"kty":"RSA","kid":"rsa-broken","alg":"RS256","n":"!!!","e":"AQAB"}`,
		`{"kty":"RSA","kid":"rsa-no-e","alg":"RS256","n":"AQAB"}`,
		`{"kty":"RSA","kid":"enc","alg":"RSA-OAEP","use":"enc","n":"` + p.RSA.JWK()["n"].(string) + `","e":"AQAB"}`,
		`"not an object"`,
		`42`,
		`null`,
		string(smallJWK),
	}
}

func TestJWKSUnknownKeysIgnored(t *testing.T) {
	p := hostile.New(t)
	p.ExtraJWKs = unusableJWKs(t, p)
	// Unknown entries before the real keys, too.
	for _, k := range []*hostile.Key{p.RSA, p.EC} {
		b, _ := json.Marshal(k.JWK())
		p.ExtraJWKs = append(p.ExtraJWKs, string(b))
	}
	p.Published = nil
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			raw := mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.Alg = alg })
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
			c := discovered(t, p)
			if _, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce); err != nil {
				t.Fatalf("a valid token against a JWKS with unknown keys: %v", err)
			}
		})
	}
	t.Run("a token signed by the short RSA key", func(t *testing.T) {
		// The 1024-bit key is in the set under kid "small"; its tokens are
		// refused even though the signature is genuine.
		c := discovered(t, p)
		small, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		k := &hostile.Key{ID: "small-2", Alg: "RS256", Signer: small}
		jwk, _ := json.Marshal(k.JWK())
		p.Edit(func(p *hostile.Provider) { p.ExtraJWKs = append(p.ExtraJWKs, string(jwk)) })
		raw := mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.Key = k })
		p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
		if _, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce); err == nil {
			t.Fatal("a token signed by a 1024-bit RSA key was accepted")
		}
	})
}

// clock is a settable clock shared by the provider and the client.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A token with an unknown kid may mean the provider rotated its keys, so it
// makes the client fetch the JWKS again, but at most once per
// oidc.KeyRefetchInterval: random kids must not turn into one JWKS fetch
// each.
func TestJWKSRefetchLimit(t *testing.T) {
	randomKid := func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
		tk.Key = p.Attacker.Key
		tk.Header = map[string]any{"kid": random(t, "kid-")}
	}

	t.Run("50 ID tokens with random kids", func(t *testing.T) {
		p := hostile.New(t)
		c := discovered(t, p)
		raws := make(chan string, 1)
		p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(<-raws) }
		for i := range 50 {
			raws <- mintID(t, p, randomKid)
			if _, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce); err == nil {
				t.Fatalf("token %d with a random kid accepted", i)
			}
		}
		if n := p.JWKSFetches(); n > 2 {
			t.Errorf("50 tokens with random kids caused %d JWKS fetches, want at most 2", n)
		}
		before := p.JWKSFetches()
		raws <- mintID(t, p, nil)
		if _, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce); err != nil {
			t.Fatalf("a valid token after the flood: %v", err)
		}
		if n := p.JWKSFetches(); n != before {
			t.Errorf("a token with a cached kid fetched the JWKS (%d, was %d)", n, before)
		}
		untouched(t, p)
	})

	t.Run("50 concurrent logout tokens with random kids", func(t *testing.T) {
		p := hostile.New(t)
		c := discovered(t, p)
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepted := 0
		for range 50 {
			raw := mintLogout(t, p, randomKid)
			wg.Go(func() {
				if _, err := c.VerifyLogoutToken(t.Context(), raw); err == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if accepted != 0 {
			t.Errorf("%d logout tokens with random kids accepted", accepted)
		}
		if n := p.JWKSFetches(); n > 2 {
			t.Errorf("50 tokens with random kids caused %d JWKS fetches, want at most 2", n)
		}
		if _, err := c.VerifyLogoutToken(t.Context(), mintLogout(t, p, nil)); err != nil {
			t.Errorf("a valid logout token after the flood: %v", err)
		}
	})

	t.Run("key rotation", func(t *testing.T) {
		p := hostile.New(t)
		clk := &clock{t: time.Now()}
		p.Now = clk.Now
		c := discovered(t, p, withClock(clk.Now))
		verify := func(k *hostile.Key) error {
			_, err := c.VerifyLogoutToken(t.Context(), mintLogout(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.Key = k }))
			return err
		}
		if err := verify(p.RSA); err != nil {
			t.Fatalf("before rotation: %v", err)
		}
		rotated := hostile.NewRSAKey(t, "rsa-rotated")
		p.Edit(func(p *hostile.Provider) { p.Published = []*hostile.Key{rotated, p.EC} })

		if err := verify(rotated); err == nil {
			t.Error("new key accepted within the refetch interval; want refused without a fetch")
		}
		if n := p.JWKSFetches(); n != 1 {
			t.Errorf("JWKS fetched %d times within the interval, want 1", n)
		}
		clk.Advance(oidc.KeyRefetchInterval)
		if err := verify(rotated); err != nil {
			t.Errorf("new key after the interval: %v", err)
		}
		if n := p.JWKSFetches(); n != 2 {
			t.Errorf("JWKS fetched %d times, want 2", n)
		}
		if err := verify(p.RSA); err == nil {
			t.Error("a key the provider no longer publishes was accepted")
		}
	})
}

func TestDiscoveryRefused(t *testing.T) {
	p := hostile.New(t)
	edit := func(f func(p *hostile.Provider, doc map[string]any)) func(p *hostile.Provider) {
		return func(p *hostile.Provider) { p.EditDiscovery = func(doc map[string]any) { f(p, doc) } }
	}
	cases := []struct {
		name string
		set  func(p *hostile.Provider)
		opts []clientOpt
	}{
		{"issuer of the attacker", edit(func(p *hostile.Provider, doc map[string]any) { doc["issuer"] = p.Attacker.URL }), nil},
		{"issuer with a trailing slash", edit(func(p *hostile.Provider, doc map[string]any) { doc["issuer"] = p.Issuer + "/" }), nil},
		{"issuer in another case", edit(func(p *hostile.Provider, doc map[string]any) { doc["issuer"] = strings.ToUpper(p.Issuer) }), nil},
		{"no issuer", edit(func(p *hostile.Provider, doc map[string]any) { delete(doc, "issuer") }), nil},
		{"no jwks_uri", edit(func(p *hostile.Provider, doc map[string]any) { delete(doc, "jwks_uri") }), nil},
		{"no token_endpoint", edit(func(p *hostile.Provider, doc map[string]any) { delete(doc, "token_endpoint") }), nil},
		{"no authorization_endpoint", edit(func(p *hostile.Provider, doc map[string]any) { delete(doc, "authorization_endpoint") }), nil},
		{"jwks_uri a file", edit(func(p *hostile.Provider, doc map[string]any) { doc["jwks_uri"] = "file:///etc/passwd" }), nil},
		{"token_endpoint relative", edit(func(p *hostile.Provider, doc map[string]any) { doc["token_endpoint"] = "/token" }), nil},
		{"token_endpoint with user info", edit(func(p *hostile.Provider, doc map[string]any) {
			doc["token_endpoint"] = strings.Replace(p.URL, "://", "://user:pass@", 1) + hostile.PathToken
		}), nil},
		{"revocation_endpoint javascript", edit(func(p *hostile.Provider, doc map[string]any) { doc["revocation_endpoint"] = "javascript:alert(1)" }), nil},
		{"only alg none", edit(func(p *hostile.Provider, doc map[string]any) {
			doc["id_token_signing_alg_values_supported"] = []string{"none"}
		}), nil},
		{"only HS256", edit(func(p *hostile.Provider, doc map[string]any) {
			doc["id_token_signing_alg_values_supported"] = []string{"HS256"}
		}), nil},
		{"PKCE plain only", edit(func(p *hostile.Provider, doc map[string]any) {
			doc["code_challenge_methods_supported"] = []string{"plain"}
		}), nil},
		{"issuer not a string", edit(func(p *hostile.Provider, doc map[string]any) { doc["issuer"] = []string{p.Issuer} }), nil},
		{"302 to the attacker", func(p *hostile.Provider) { p.Discovery = hostile.Redirect(p.Attacker.URL + hostile.PathDiscovery) }, nil},
		{"10 MiB document", func(p *hostile.Provider) { p.Discovery = hostile.Huge(tenMiB) }, nil},
		{"10 MiB member", edit(func(p *hostile.Provider, doc map[string]any) {
			doc["x_padding"] = strings.Repeat(hostile.Canary, tenMiB/len(hostile.Canary))
		}), nil},
		{"never answers", func(p *hostile.Provider) { p.Discovery = p.Hang }, []clientOpt{withTimeout(hangTimeout)}},
		{"500", func(p *hostile.Provider) { p.Discovery = hostile.Status(http.StatusInternalServerError, nil) }, nil},
		{"not JSON", func(p *hostile.Provider) {
			p.Discovery = func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>"+hostile.Canary) }
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.Reset()
			tc.set(p)
			c := oidc.New(options(p, tc.opts...))
			err := c.Discover(t.Context())
			if err == nil {
				t.Fatal("Discover succeeded")
			}
			if c.Ready() {
				t.Error("client ready after a refused discovery")
			}
			if _, err := c.AuthCodeURL(t.Context(), oidc.AuthRequest{State: "s", Nonce: "n", Verifier: strings.Repeat("v", 43)}); err == nil {
				t.Error("AuthCodeURL works after a refused discovery")
			}
			noLeak(t, err)
			untouched(t, p)
		})
	}
}

func TestCheckIss(t *testing.T) {
	p := hostile.New(t)
	c := discovered(t, p)
	for _, tc := range []struct {
		iss  string
		want bool
	}{
		{p.Issuer, true},
		{"", false}, // the provider advertises the parameter
		{p.Attacker.URL, false},
		{p.Issuer + "/", false},
	} {
		if err := c.CheckIss(tc.iss); (err == nil) != tc.want {
			t.Errorf("CheckIss(%q) = %v, want ok %t", tc.iss, err, tc.want)
		}
	}
}

func TestRefresh(t *testing.T) {
	p := hostile.New(t)
	type result struct {
		ok      bool
		refresh string // the refresh token the result must carry, "" for "the new one"
	}
	const oldRT = "rt-old-9d3c1f"
	cases := []struct {
		name    string
		set     func(t *testing.T, p *hostile.Provider)
		subject string
		opts    []clientOpt
		want    result
	}{
		{"new refresh token and ID token", func(t *testing.T, p *hostile.Provider) {
			raw := mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "nonce") })
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
		}, hostile.DefaultSubject, nil, result{ok: true}},
		{"no refresh token in the answer keeps the old one", func(t *testing.T, p *hostile.Provider) {
			p.TokenJSON = func(url.Values) map[string]any {
				m := p.TokenResponse("")
				delete(m, "refresh_token")
				return m
			}
		}, hostile.DefaultSubject, nil, result{ok: true, refresh: oldRT}},
		{"empty refresh token in the answer keeps the old one", func(t *testing.T, p *hostile.Provider) {
			p.TokenJSON = func(url.Values) map[string]any {
				m := p.TokenResponse("")
				m["refresh_token"] = ""
				return m
			}
		}, hostile.DefaultSubject, nil, result{ok: true, refresh: oldRT}},
		{"ID token of another subject", func(t *testing.T, p *hostile.Provider) {
			raw := mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["sub"] = "mallory" })
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
		}, hostile.DefaultSubject, nil, result{}},
		{"ID token and no subject to compare with", func(t *testing.T, p *hostile.Provider) {
			raw := mintID(t, p, nil)
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
		}, "", nil, result{}},
		{"ID token with a bad signature", func(t *testing.T, p *hostile.Provider) {
			raw := mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.BadSignature = true })
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
		}, hostile.DefaultSubject, nil, result{}},
		{"ID token alg none", func(t *testing.T, p *hostile.Provider) {
			raw := mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.Alg = "none" })
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
		}, hostile.DefaultSubject, nil, result{}},
		{"ID token for another client", func(t *testing.T, p *hostile.Provider) {
			raw := mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["aud"] = "another-client" })
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
		}, hostile.DefaultSubject, nil, result{}},
		{"ID token expired", func(t *testing.T, p *hostile.Provider) {
			raw := mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["exp"] = unix(p, -5*time.Minute) })
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
		}, hostile.DefaultSubject, nil, result{}},
		{"302 to the attacker", func(t *testing.T, p *hostile.Provider) {
			p.Token = hostile.Redirect(p.Attacker.URL + "/token")
		}, hostile.DefaultSubject, nil, result{}},
		{"invalid_grant", func(t *testing.T, p *hostile.Provider) {
			p.Token = func(w http.ResponseWriter, r *http.Request) {
				hostile.Status(http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "unknown " + r.PostForm.Get("refresh_token")})(w, r)
			}
		}, hostile.DefaultSubject, nil, result{}},
		{"10 MiB body", func(t *testing.T, p *hostile.Provider) { p.Token = hostile.Huge(tenMiB) }, hostile.DefaultSubject, nil, result{}},
		{"never answers", func(t *testing.T, p *hostile.Provider) { p.Token = p.Hang }, hostile.DefaultSubject, []clientOpt{withTimeout(hangTimeout)}, result{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.Reset()
			tc.set(t, p)
			c := discovered(t, p, tc.opts...)
			got, err := c.Refresh(t.Context(), oldRT, tc.subject, oidc.TokenParams{})
			if !tc.want.ok {
				if err == nil {
					t.Fatalf("Refresh succeeded: %+v", got)
				}
				noLeak(t, err, oldRT)
				untouched(t, p)
				if tc.name == "invalid_grant" && !oidc.IsDeadGrant(err) {
					t.Errorf("IsDeadGrant(%v) = false, want true", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			forms := p.TokenForms()
			if len(forms) != 1 || forms[0].Get("grant_type") != "refresh_token" || forms[0].Get("refresh_token") != oldRT {
				t.Errorf("token requests %v, want one refresh_token grant with the old token", forms)
			}
			if got.Subject != hostile.DefaultSubject {
				t.Errorf("subject %q, want %q", got.Subject, hostile.DefaultSubject)
			}
			switch {
			case tc.want.refresh != "" && got.RefreshToken != tc.want.refresh:
				t.Errorf("refresh token %q, want %q", got.RefreshToken, tc.want.refresh)
			case tc.want.refresh == "" && (got.RefreshToken == "" || got.RefreshToken == oldRT):
				t.Errorf("refresh token %q, want the new one", got.RefreshToken)
			}
		})
	}
}

func TestVerifyLogoutToken(t *testing.T) {
	p := hostile.New(t)
	valid := map[string]idEdit{
		"sub and sid": nil,
		"sid only":    func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "sub") },
		"sub only":    func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "sid") },
		"ES256":       func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.Alg = "ES256" },
		"typ logout+jwt": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Header = map[string]any{"typ": "logout+jwt"}
		},
		"missing exp (Ory Hydra v2.3.0)": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "exp") },
	}
	invalid := map[string]idEdit{
		"wrong aud":   func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["aud"] = "another-client" },
		"missing aud": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "aud") },
		"wrong iss":   func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["iss"] = p.Attacker.URL },
		"missing iss": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "iss") },
		"expired": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["iat"], c["exp"] = unix(p, -5*time.Minute), unix(p, -3*time.Minute)
		},
		"nonce null": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["nonce"] = nil },
		"iat too old, no exp": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			delete(c, "exp")
			c["iat"] = unix(p, -oidc.LogoutMaxAge-time.Minute)
		},
		"missing iat": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "iat") },
		"iat in the future": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["iat"], c["exp"] = unix(p, time.Hour), unix(p, 2*time.Hour)
		},
		"iat too old": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["iat"] = unix(p, -oidc.LogoutMaxAge-time.Minute)
		},
		"nonce present":  func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["nonce"] = hostile.DefaultNonce },
		"missing events": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "events") },
		"events of another kind": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["events"] = map[string]any{"http://schemas.openid.net/event/other": map[string]any{}}
		},
		"logout event not an object": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["events"] = map[string]any{oidc.BackchannelLogoutEvent: true}
		},
		"missing jti":         func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "jti") },
		"neither sub nor sid": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "sub"); delete(c, "sid") },
		"an ID token": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Claims = p.IDClaims()
		},
	}
	for name, e := range signatureAttacks() {
		invalid[name] = e
	}
	for name, e := range headerKeyAttacks() {
		invalid[name] = e
	}
	for name, edit := range valid {
		t.Run("valid/"+name, func(t *testing.T) {
			p.Reset()
			c := discovered(t, p)
			raw := mintLogout(t, p, edit)
			lt, err := c.VerifyLogoutToken(t.Context(), raw)
			if err != nil {
				t.Fatalf("VerifyLogoutToken: %v", err)
			}
			if lt.JTI == "" || (lt.Subject == "" && lt.SID == "") {
				t.Errorf("got %+v, want jti and sub or sid", lt)
			}
		})
	}
	for name, edit := range invalid {
		t.Run("invalid/"+name, func(t *testing.T) {
			p.Reset()
			c := discovered(t, p)
			raw := mintLogout(t, p, edit)
			lt, err := c.VerifyLogoutToken(t.Context(), raw)
			if err == nil {
				t.Fatalf("VerifyLogoutToken accepted it: %+v", lt)
			}
			noLeak(t, err, raw)
			untouched(t, p)
			if n := p.JWKSFetches(); n > 1 {
				t.Errorf("JWKS fetched %d times, want at most 1", n)
			}
		})
	}
}

// The other calls to the token and revocation endpoints obey the same
// rules: no redirects, bounded bodies, no secrets in errors.
func TestOtherGrantsBadEndpoint(t *testing.T) {
	p := hostile.New(t)
	calls := map[string]func(ctx context.Context, c *oidc.Client) error{
		"ClientCredentials": func(ctx context.Context, c *oidc.Client) error {
			_, err := c.ClientCredentials(ctx, oidc.TokenParams{Audience: "api"})
			return err
		},
		"ExchangeToken": func(ctx context.Context, c *oidc.Client) error {
			_, err := c.ExchangeToken(ctx, "subject-token-6a1e0c", oidc.TokenParams{Audience: "api"})
			return err
		},
		"Revoke": func(ctx context.Context, c *oidc.Client) error {
			return c.Revoke(ctx, "rt-to-revoke-77b2e1", "refresh_token")
		},
	}
	answers := map[string]func(p *hostile.Provider) http.HandlerFunc{
		"302 to the attacker": func(p *hostile.Provider) http.HandlerFunc { return hostile.Redirect(p.Attacker.URL + "/token") },
		"10 MiB body":         func(p *hostile.Provider) http.HandlerFunc { return hostile.Huge(tenMiB) },
		"never answers":       func(p *hostile.Provider) http.HandlerFunc { return p.Hang },
		"400 with a body": func(p *hostile.Provider) http.HandlerFunc {
			return hostile.Status(http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		},
	}
	for call, do := range calls {
		for answer, h := range answers {
			t.Run(call+"/"+answer, func(t *testing.T) {
				if call == "Revoke" && answer == "10 MiB body" {
					t.Skip("a revocation answer's body is not used")
				}
				p.Reset()
				p.Token, p.Revocation = h(p), h(p)
				c := discovered(t, p, withTimeout(hangTimeout))
				err := do(t.Context(), c)
				if err == nil {
					t.Fatal("call succeeded")
				}
				if p.TokenRequests()+p.Hits(hostile.PathRevocation) != 1 {
					t.Errorf("provider got %d token and %d revocation requests, want 1 in all", p.TokenRequests(), p.Hits(hostile.PathRevocation))
				}
				noLeak(t, err, "subject-token-6a1e0c", "rt-to-revoke-77b2e1")
				untouched(t, p)
			})
		}
	}
}

// A client the caller built without the safeguards still gets them.
func TestCallerHTTPClientGuarded(t *testing.T) {
	p := hostile.New(t)
	p.Token = hostile.Redirect(p.Attacker.URL + "/token")
	o := options(p)
	o.HTTPClient = &http.Client{} // follows redirects, no timeout, no size bound
	c := oidc.New(o)
	if err := c.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce); err == nil {
		t.Error("Exchange followed the redirect and succeeded")
	}
	untouched(t, p)

	p.Reset()
	p.Token = hostile.Huge(tenMiB)
	if _, err := c.Refresh(t.Context(), "rt", hostile.DefaultSubject, oidc.TokenParams{}); err == nil {
		t.Error("Refresh read a 10 MiB answer")
	}
}
