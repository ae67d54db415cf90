package nodeop

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// redirectURI is never requested: Login stops at the first redirect that
// leaves the provider.
const redirectURI = "https://rp.example.test/callback"

const (
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	apiResource   = "https://api.example.test/"
)

func TestDiscovery(t *testing.T) {
	key := NewRSAKey(t)
	p := Start(t, Options{
		PAR: true, DPoP: true, DPoPNonce: true, MTLS: true,
		BackchannelLogout: true, Revocation: true, Introspection: true,
		Clients: []Client{{
			ClientID: "bff", TokenEndpointAuthMethod: "private_key_jwt",
			JWKS: PublicJWKS(key), RedirectURIs: []string{redirectURI},
		}},
	})
	if !strings.HasPrefix(p.Issuer, "https://127.0.0.1:") {
		t.Fatalf("Issuer = %q, want https://127.0.0.1:PORT", p.Issuer)
	}

	// A client that does not trust the CA cannot talk to the provider.
	if _, err := http.Get(p.Issuer + "/.well-known/openid-configuration"); err == nil {
		t.Error("discovery without the CA: got no error, want a certificate error")
	}

	var doc struct {
		Issuer      string            `json:"issuer"`
		PAR         string            `json:"pushed_authorization_request_endpoint"`
		DPoPAlgs    []string          `json:"dpop_signing_alg_values_supported"`
		Aliases     map[string]string `json:"mtls_endpoint_aliases"`
		ISSParam    bool              `json:"authorization_response_iss_parameter_supported"`
		BoundTokens bool              `json:"tls_client_certificate_bound_access_tokens"`
		AuthMethods []string          `json:"token_endpoint_auth_methods_supported"`
		Backchannel bool              `json:"backchannel_logout_supported"`
	}
	getJSON(t, p.CA.HTTPClient(t), p.Issuer+"/.well-known/openid-configuration", &doc)
	if doc.Issuer != p.Issuer {
		t.Errorf("issuer = %q, want %q", doc.Issuer, p.Issuer)
	}
	if doc.PAR == "" || doc.PAR != p.PAREndpoint {
		t.Errorf("pushed_authorization_request_endpoint = %q, want %q (non-empty)", doc.PAR, p.PAREndpoint)
	}
	if !slices.Contains(doc.DPoPAlgs, "ES256") {
		t.Errorf("dpop_signing_alg_values_supported = %v, want ES256 in it", doc.DPoPAlgs)
	}
	if !doc.ISSParam {
		t.Error("authorization_response_iss_parameter_supported = false, want true")
	}
	if !doc.BoundTokens || !doc.Backchannel {
		t.Errorf("tls_client_certificate_bound_access_tokens = %v, backchannel_logout_supported = %v, want true, true",
			doc.BoundTokens, doc.Backchannel)
	}
	for _, m := range []string{"private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"} {
		if !slices.Contains(doc.AuthMethods, m) {
			t.Errorf("token_endpoint_auth_methods_supported = %v, want %s in it", doc.AuthMethods, m)
		}
	}
	for _, ep := range []string{"token_endpoint", "pushed_authorization_request_endpoint",
		"revocation_endpoint", "introspection_endpoint", "userinfo_endpoint"} {
		alias := doc.Aliases[ep]
		if !strings.HasPrefix(alias, "https://127.0.0.1:") || strings.HasPrefix(alias, p.Issuer+"/") {
			t.Errorf("mtls_endpoint_aliases[%s] = %q, want a URL on the mTLS port", ep, alias)
		}
		if p.MTLSAliases[ep] != alias {
			t.Errorf("MTLSAliases[%s] = %q, want %q", ep, p.MTLSAliases[ep], alias)
		}
	}
}

// TestPrivateKeyJWTPARDPoP runs the code flow of a private_key_jwt client
// with PAR and DPoP (nonces required) and refreshes, with and without the
// FAPI 2.0 profile.
func TestPrivateKeyJWTPARDPoP(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func(testing.TB) *Key
		alg  string
		fapi bool
	}{
		{"RSA PS256", NewRSAKey, "PS256", false},
		{"EC ES256 FAPI2", NewECKey, "ES256", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clientKey := tc.key(t)
			p := Start(t, Options{
				PAR: true, RequirePAR: true, DPoP: true, DPoPNonce: true, FAPI2: tc.fapi,
				Revocation: true, Introspection: true,
				Resource: apiResource, ResourceScope: "api",
				Accounts: map[string]Account{"alice": {Email: "alice@example.test", Name: "Alice Liddell"}},
				Clients: []Client{{
					ClientID: "bff", TokenEndpointAuthMethod: "private_key_jwt",
					JWKS: PublicJWKS(clientKey), RedirectURIs: []string{redirectURI},
					DPoPBoundAccessTokens: true, IDTokenSignedResponseAlg: tc.alg,
				}},
			})
			c := &client{t: t, p: p, http: p.CA.HTTPClient(t), id: "bff", key: clientKey, dpop: NewECKey(t)}

			// Without the FAPI 2.0 profile an assertion may also name the
			// endpoint it is sent to (TestFAPI2Refusals: with it, it may not).
			if !tc.fapi {
				c.assertionAudience = p.PAREndpoint
			}
			verifier, authURL := c.push(p.PAREndpoint, url.Values{
				"scope": {"openid email profile api offline_access"},
			})
			c.assertionAudience = ""
			if q := mustParse(t, authURL).Query(); len(q) != 2 || q.Get("request_uri") == "" {
				t.Errorf("authorization URL query = %v, want only client_id and request_uri", q)
			}
			code := c.login(authURL)

			// The provider demands a nonce first; the retry carries it.
			form := url.Values{
				"grant_type":    {"authorization_code"},
				"code":          {code},
				"redirect_uri":  {redirectURI},
				"code_verifier": {verifier},
			}
			c.nonce = ""
			resp := c.post(p.TokenEndpoint, c.authenticate(form), c.proof(http.MethodPost, p.TokenEndpoint, ""))
			if resp.status != http.StatusBadRequest || resp.json["error"] != "use_dpop_nonce" || resp.header.Get("DPoP-Nonce") == "" {
				t.Fatalf("token request without nonce: got %d %v (DPoP-Nonce %q), want 400 use_dpop_nonce with a nonce",
					resp.status, resp.json, resp.header.Get("DPoP-Nonce"))
			}
			c.nonce = resp.header.Get("DPoP-Nonce")
			tok := c.token(p.TokenEndpoint, form)

			claims := verifyJWT(t, p, tok.AccessToken)
			if got := claims["aud"]; got != apiResource {
				t.Errorf("access token aud = %v, want %s", got, apiResource)
			}
			if got := cnf(claims, "jkt"); got != c.dpop.Thumbprint() {
				t.Errorf("access token cnf.jkt = %q, want %q", got, c.dpop.Thumbprint())
			}
			if claims["sub"] != "alice" || claims["client_id"] != "bff" || claims["scope"] != "api" {
				t.Errorf("access token sub, client_id, scope = %v, %v, %v, want alice, bff, api",
					claims["sub"], claims["client_id"], claims["scope"])
			}
			id := verifyJWT(t, p, tok.IDToken)
			if id["email"] != "alice@example.test" || id["name"] != "Alice Liddell" || id["aud"] != "bff" {
				t.Errorf("ID token email, name, aud = %v, %v, %v, want alice@example.test, Alice Liddell, bff",
					id["email"], id["name"], id["aud"])
			}
			if alg := jwtAlg(t, tok.IDToken); alg != tc.alg {
				t.Errorf("ID token alg = %s, want %s", alg, tc.alg)
			}
			if tok.RefreshToken == "" {
				t.Fatal("no refresh token")
			}

			// Refresh: a new DPoP-bound token and a rotated refresh token;
			// the old refresh token is spent.
			refreshed := c.token(p.TokenEndpoint, url.Values{
				"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
			})
			if refreshed.AccessToken == tok.AccessToken || refreshed.RefreshToken == "" || refreshed.RefreshToken == tok.RefreshToken {
				t.Error("refresh: want a new access token and a rotated refresh token")
			}
			if got := cnf(verifyJWT(t, p, refreshed.AccessToken), "jkt"); got != c.dpop.Thumbprint() {
				t.Errorf("refreshed access token cnf.jkt = %q, want %q", got, c.dpop.Thumbprint())
			}
			resp = c.post(p.TokenEndpoint, c.authenticate(url.Values{
				"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
			}), c.proof(http.MethodPost, p.TokenEndpoint, ""))
			if resp.status != http.StatusBadRequest || resp.json["error"] != "invalid_grant" {
				t.Errorf("reused refresh token: got %d %v, want 400 invalid_grant", resp.status, resp.json)
			}

			// A refresh with another DPoP key is refused.
			other := &client{t: t, p: p, http: c.http, id: "bff", key: clientKey, dpop: NewECKey(t), nonce: c.nonce}
			resp = other.post(p.TokenEndpoint, other.authenticate(url.Values{
				"grant_type": {"refresh_token"}, "refresh_token": {refreshed.RefreshToken},
			}), other.proof(http.MethodPost, p.TokenEndpoint, ""))
			if resp.status != http.StatusBadRequest || resp.json["error"] != "invalid_grant" {
				t.Errorf("refresh with another DPoP key: got %d %v, want 400 invalid_grant", resp.status, resp.json)
			}
		})
	}
}

// TestMTLS shows certificate-bound tokens through the mTLS endpoint
// aliases: tls_client_auth with a certificate the CA signed (code flow and
// client credentials) and self_signed_tls_client_auth.
func TestMTLS(t *testing.T) {
	ca := NewCA(t)
	cert := ca.ClientCert(t, "bff")
	selfSigned := SelfSignedCert(t, "bff-self")
	stranger := SelfSignedCert(t, "bff") // same subject, not from the CA
	p := Start(t, Options{
		CA: ca, MTLS: true, PAR: true, Introspection: true, ClientCredentials: true,
		Clients: []Client{{
			ClientID: "bff", TokenEndpointAuthMethod: "tls_client_auth",
			TLSClientAuthSubjectDN:                cert.SubjectDN(),
			TLSClientCertificateBoundAccessTokens: true,
			RedirectURIs:                          []string{redirectURI},
			GrantTypes:                            []string{"authorization_code", "refresh_token", "client_credentials"},
		}, {
			ClientID: "self", TokenEndpointAuthMethod: "self_signed_tls_client_auth",
			JWKS:                                  &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{selfSigned.JWK()}},
			TLSClientCertificateBoundAccessTokens: true,
			RedirectURIs:                          []string{redirectURI},
			GrantTypes:                            []string{"authorization_code", "client_credentials"},
		}},
	})
	if cert.SubjectDN() != "CN=bff,O=Cloakroom Test" {
		t.Errorf("SubjectDN = %q, want CN=bff,O=Cloakroom Test", cert.SubjectDN())
	}
	alias := p.MTLSAliases

	t.Run("code flow", func(t *testing.T) {
		c := &client{t: t, p: p, http: ca.HTTPClientWithCert(t, cert), id: "bff"}
		verifier, authURL := c.push(alias["pushed_authorization_request_endpoint"], url.Values{"scope": {"openid email"}})
		code := c.login(authURL)
		form := url.Values{
			"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {redirectURI}, "code_verifier": {verifier}, "client_id": {"bff"},
		}

		// The issuer's own port never asks for a certificate.
		resp := c.post(p.TokenEndpoint, form, "")
		if resp.status != http.StatusUnauthorized || resp.json["error"] != "invalid_client" {
			t.Errorf("token endpoint without the alias: got %d %v, want 401 invalid_client", resp.status, resp.json)
		}

		tok := c.token(alias["token_endpoint"], form)
		if !strings.EqualFold(tok.TokenType, "Bearer") {
			t.Errorf("token_type = %q, want Bearer", tok.TokenType)
		}
		in := c.introspect(alias["introspection_endpoint"], tok.AccessToken)
		if in["active"] != true || cnf(in, "x5t#S256") != cert.Thumbprint() {
			t.Errorf("introspection = %v, want active with cnf.x5t#S256 %s", in, cert.Thumbprint())
		}

		// The token works at userinfo with the certificate, not without.
		for _, tc := range []struct {
			name   string
			client *http.Client
			url    string
			want   int
		}{
			{"with certificate", c.http, alias["userinfo_endpoint"], http.StatusOK},
			{"other certificate", ca.HTTPClientWithCert(t, ca.ClientCert(t, "other")), alias["userinfo_endpoint"], http.StatusUnauthorized},
			{"without certificate", p.CA.HTTPClient(t), p.UserinfoEndpoint, http.StatusUnauthorized},
		} {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, tc.url, nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp := do(t, tc.client, req)
			if resp.status != tc.want {
				t.Errorf("userinfo %s: got %d %v, want %d", tc.name, resp.status, resp.json, tc.want)
			}
		}
	})

	t.Run("client credentials", func(t *testing.T) {
		for _, tc := range []struct {
			name, id string
			cert     *Cert
			want     int
		}{
			{"tls_client_auth", "bff", cert, http.StatusOK},
			{"self_signed_tls_client_auth", "self", selfSigned, http.StatusOK},
			{"tls_client_auth, certificate not from the CA", "bff", stranger, http.StatusUnauthorized},
			{"self_signed_tls_client_auth, unregistered certificate", "self", stranger, http.StatusUnauthorized},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := &client{t: t, p: p, http: ca.HTTPClientWithCert(t, tc.cert), id: tc.id}
				resp := c.post(alias["token_endpoint"], url.Values{"grant_type": {"client_credentials"}, "client_id": {tc.id}}, "")
				if resp.status != tc.want {
					t.Fatalf("got %d %v, want %d", resp.status, resp.json, tc.want)
				}
				if tc.want != http.StatusOK {
					return
				}
				at, _ := resp.json["access_token"].(string)
				in := c.introspect(alias["introspection_endpoint"], at)
				if in["active"] != true || cnf(in, "x5t#S256") != tc.cert.Thumbprint() {
					t.Errorf("introspection = %v, want active with cnf.x5t#S256 %s", in, tc.cert.Thumbprint())
				}
			})
		}
	})
}

// TestFAPI2Refusals records what the FAPI 2.0 profile refuses.
func TestFAPI2Refusals(t *testing.T) {
	key := NewECKey(t)
	good := Client{
		ClientID: "bff", TokenEndpointAuthMethod: "private_key_jwt", JWKS: PublicJWKS(key),
		RedirectURIs: []string{redirectURI}, DPoPBoundAccessTokens: true,
	}

	t.Run("registration", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			client Client
			want   string
		}{
			{"client_secret_basic", Client{
				ClientID: "plain", ClientSecret: "a-long-enough-client-secret-for-tests",
				TokenEndpointAuthMethod: "client_secret_basic", RedirectURIs: []string{redirectURI},
				DPoPBoundAccessTokens: true,
			}, "token_endpoint_auth_method"},
			{"bearer tokens", Client{
				ClientID: "bearer", TokenEndpointAuthMethod: "private_key_jwt", JWKS: PublicJWKS(key),
				RedirectURIs: []string{redirectURI},
			}, "dpop_bound_access_tokens"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := start(t, Options{FAPI2: true, DPoP: true, Clients: []Client{tc.client}})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("start: got %v, want an error naming %s", err, tc.want)
				}
			})
		}
	})

	p := Start(t, Options{FAPI2: true, DPoP: true, Clients: []Client{good}})
	c := &client{t: t, p: p, http: p.CA.HTTPClient(t), id: "bff", key: key, dpop: NewECKey(t)}

	t.Run("authorization request not pushed", func(t *testing.T) {
		verifier := randomString(t)
		q := url.Values{
			"client_id": {"bff"}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {redirectURI}, "state": {"s1"},
			"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"},
		}
		u, err := p.Login(t.Context(), p.Browser(t), p.AuthorizationEndpoint+"?"+q.Encode())
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Code != "invalid_request" || !strings.Contains(ae.Description, "Pushed Authorization Request") {
			t.Errorf("Login: got %v, %v, want an invalid_request redirect about PAR", u, err)
		}
	})

	for _, tc := range []struct {
		name     string
		form     url.Values
		aud      string
		want     int
		wantCode string
	}{
		{"without PKCE", url.Values{"code_challenge": nil, "code_challenge_method": nil}, "", http.StatusBadRequest, "invalid_request"},
		{"assertion audience is the endpoint", nil, p.PAREndpoint, http.StatusUnauthorized, "invalid_client"},
		{"conformant", nil, "", http.StatusCreated, ""},
	} {
		t.Run("PAR "+tc.name, func(t *testing.T) {
			form := url.Values{
				"response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {redirectURI},
				"state": {"s2"}, "code_challenge": {s256(randomString(t))}, "code_challenge_method": {"S256"},
			}
			for k, v := range tc.form {
				if v == nil {
					form.Del(k)
				}
			}
			aud := tc.aud
			if aud == "" {
				aud = p.Issuer
			}
			c.assertionAudience = aud
			resp := c.post(p.PAREndpoint, c.authenticate(form), "")
			if resp.status != tc.want || (tc.wantCode != "" && resp.json["error"] != tc.wantCode) {
				t.Errorf("got %d %v, want %d %s", resp.status, resp.json, tc.want, tc.wantCode)
			}
		})
	}
}

// TestBackchannelLogout checks that RP-initiated logout through
// Provider.Logout sends a logout token to the client's
// backchannel_logout_uri, over HTTPS the CA certified.
func TestBackchannelLogout(t *testing.T) {
	ca := NewCA(t)
	tokens := make(chan string, 1)
	rp := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil && r.URL.Path == "/backchannel" {
			select {
			case tokens <- r.PostForm.Get("logout_token"):
			default:
			}
		}
	})}
	rpURL := serveTLS(t, rp, ca.ServerCert(t))
	secret := "a-long-enough-client-secret-for-tests-0123456789"
	p := Start(t, Options{CA: ca, BackchannelLogout: true, Clients: []Client{{
		ClientID: "rp", ClientSecret: secret, RedirectURIs: []string{redirectURI},
		PostLogoutRedirectURIs: []string{redirectURI + "/out"},
		BackchannelLogoutURI:   rpURL + "/backchannel",
	}}})
	c := &client{t: t, p: p, http: p.CA.HTTPClient(t), id: "rp", secret: secret}
	browser := p.Browser(t)
	verifier := randomString(t)
	q := url.Values{
		"client_id": {"rp"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {redirectURI},
		"state": {"s"}, "code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"},
	}
	cb, err := p.Login(t.Context(), browser, p.AuthorizationEndpoint+"?"+q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	tok := c.token(p.TokenEndpoint, url.Values{
		"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier},
	})

	end := url.Values{"id_token_hint": {tok.IDToken}, "post_logout_redirect_uri": {redirectURI + "/out"}, "state": {"bye"}}
	out, err := p.Logout(t.Context(), browser, p.EndSessionEndpoint+"?"+end.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if out == nil || out.String() != redirectURI+"/out?state=bye" {
		t.Errorf("Logout = %v, want %s/out?state=bye", out, redirectURI)
	}
	select {
	case lt := <-tokens:
		claims := verifyJWT(t, p, lt)
		events, _ := claims["events"].(map[string]any)
		if claims["aud"] != "rp" || claims["sub"] != DefaultUsername || events["http://schemas.openid.net/event/backchannel-logout"] == nil {
			t.Errorf("logout token claims = %v, want aud rp, sub %s and the back-channel logout event", claims, DefaultUsername)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no logout token received")
	}
}

// client is a relying party made of plain HTTP requests.
type client struct {
	t      *testing.T
	p      *Provider
	http   *http.Client
	id     string
	secret string
	key    *Key // private_key_jwt
	dpop   *Key // nil: no DPoP
	nonce  string
	// assertionAudience overrides the client assertion's aud (the issuer).
	assertionAudience string
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
}

type response struct {
	status int
	header http.Header
	json   map[string]any
}

// authenticate adds client authentication to form: a client assertion
// (private_key_jwt) or the client_id (mTLS); a secret goes in the header
// (see post).
func (c *client) authenticate(form url.Values) url.Values {
	out := url.Values{}
	for k, v := range form {
		out[k] = v
	}
	out.Set("client_id", c.id)
	if c.key != nil {
		aud := c.assertionAudience
		if aud == "" {
			aud = c.p.Issuer
		}
		out.Set("client_assertion_type", assertionType)
		out.Set("client_assertion", c.assertion(aud))
	}
	return out
}

func (c *client) assertion(aud string) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: c.key.Alg, Key: c.key.JWK()},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		c.t.Fatal(err)
	}
	now := time.Now()
	s, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: c.id, Subject: c.id, Audience: jwt.Audience{aud}, ID: randomString(c.t),
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
	}).Serialize()
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// proof makes a DPoP proof (RFC 9449 section 4.2) for htm and htu with the
// client's current nonce, and ath when accessToken is not empty.
func (c *client) proof(htm, htu, accessToken string) string {
	if c.dpop == nil {
		return ""
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: c.dpop.Alg, Key: c.dpop.Signer},
		&jose.SignerOptions{EmbedJWK: true, ExtraHeaders: map[jose.HeaderKey]any{jose.HeaderType: "dpop+jwt"}})
	if err != nil {
		c.t.Fatal(err)
	}
	claims := map[string]any{"htm": htm, "htu": htu, "iat": time.Now().Unix(), "jti": randomString(c.t)}
	if c.nonce != "" {
		claims["nonce"] = c.nonce
	}
	if accessToken != "" {
		claims["ath"] = s256(accessToken)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// post sends form, with a DPoP header when proof is not empty.
func (c *client) post(endpoint string, form url.Values, proof string) response {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	if c.secret != "" {
		req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	}
	return do(c.t, c.http, req)
}

// postDPoP is post with a fresh proof, retried once with the provider's
// nonce after use_dpop_nonce (RFC 9449 section 8).
func (c *client) postDPoP(endpoint string, form url.Values) response {
	c.t.Helper()
	resp := c.post(endpoint, c.authenticate(form), c.proof(http.MethodPost, endpoint, ""))
	if n := resp.header.Get("DPoP-Nonce"); n != "" {
		c.nonce = n
	}
	if resp.status == http.StatusBadRequest && resp.json["error"] == "use_dpop_nonce" {
		resp = c.post(endpoint, c.authenticate(form), c.proof(http.MethodPost, endpoint, ""))
	}
	return resp
}

// push sends a pushed authorization request (code flow, PKCE S256) with
// extra parameters and returns the code verifier and the authorization URL.
func (c *client) push(endpoint string, extra url.Values) (verifier, authURL string) {
	c.t.Helper()
	verifier = randomString(c.t)
	form := url.Values{
		"response_type": {"code"}, "redirect_uri": {redirectURI}, "state": {"state-1"},
		"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		form[k] = v
	}
	resp := c.postDPoP(endpoint, form)
	uri, _ := resp.json["request_uri"].(string)
	if resp.status != http.StatusCreated || !strings.HasPrefix(uri, "urn:ietf:params:oauth:request_uri:") {
		c.t.Fatalf("PAR: got %d %v, want 201 with a request_uri", resp.status, resp.json)
	}
	q := url.Values{"client_id": {c.id}, "request_uri": {uri}}
	return verifier, c.p.AuthorizationEndpoint + "?" + q.Encode()
}

// login signs in through authURL and returns the code, checking state and
// the RFC 9207 iss parameter.
func (c *client) login(authURL string) string {
	c.t.Helper()
	cb, err := c.p.Login(c.t.Context(), c.p.Browser(c.t), authURL)
	if err != nil {
		c.t.Fatalf("Login: %v", err)
	}
	q := cb.Query()
	if got := cb.Scheme + "://" + cb.Host + cb.Path; got != redirectURI {
		c.t.Errorf("redirected to %s, want %s", got, redirectURI)
	}
	if q.Get("iss") != c.p.Issuer || q.Get("state") != "state-1" || q.Get("code") == "" {
		c.t.Fatalf("callback query = %v, want code, state=state-1 and iss=%s", q, c.p.Issuer)
	}
	return q.Get("code")
}

// token runs a token request (with DPoP when the client has a key) and
// checks the token type.
func (c *client) token(endpoint string, form url.Values) tokenResponse {
	c.t.Helper()
	var resp response
	if c.dpop != nil {
		resp = c.postDPoP(endpoint, form)
	} else {
		resp = c.post(endpoint, c.authenticate(form), "")
	}
	if resp.status != http.StatusOK {
		c.t.Fatalf("token request (%s): got %d %v, want 200", form.Get("grant_type"), resp.status, resp.json)
	}
	var tok tokenResponse
	b, _ := json.Marshal(resp.json)
	if err := json.Unmarshal(b, &tok); err != nil {
		c.t.Fatal(err)
	}
	want := "Bearer"
	if c.dpop != nil {
		want = "DPoP"
	}
	if tok.TokenType != want || tok.AccessToken == "" {
		c.t.Fatalf("token_type = %q, want %s with an access token", tok.TokenType, want)
	}
	return tok
}

func (c *client) introspect(endpoint, token string) map[string]any {
	c.t.Helper()
	resp := c.post(endpoint, c.authenticate(url.Values{"token": {token}}), "")
	if resp.status != http.StatusOK {
		c.t.Fatalf("introspection: got %d %v, want 200", resp.status, resp.json)
	}
	return resp.json
}

func do(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{status: resp.StatusCode, header: resp.Header, json: map[string]any{}}
	if len(body) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(body, &out.json); err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
		}
	}
	return out
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// verifyJWT checks a JWT's signature with the provider's JWKS, as an
// upstream API would, and returns its claims.
func verifyJWT(t *testing.T, p *Provider, token string) map[string]any {
	t.Helper()
	var set jose.JSONWebKeySet
	getJSON(t, p.CA.HTTPClient(t), p.JWKSURI, &set)
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.PS256, jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	claims := map[string]any{}
	if err := tok.Claims(&set, &claims); err != nil {
		t.Fatalf("verify JWT: %v", err)
	}
	if claims["iss"] != p.Issuer {
		t.Errorf("JWT iss = %v, want %s", claims["iss"], p.Issuer)
	}
	return claims
}

func jwtAlg(t *testing.T, token string) string {
	t.Helper()
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.PS256, jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Headers[0].Algorithm
}

func cnf(claims map[string]any, member string) string {
	m, _ := claims["cnf"].(map[string]any)
	s, _ := m[member].(string)
	return s
}

// serveTLS runs srv on 127.0.0.1 with cert until the test ends and returns
// its URL.
func serveTLS(t *testing.T, srv *http.Server, cert *Cert) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + l.Addr().String()
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func randomString(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b64(b)
}

func s256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return b64(sum[:])
}
