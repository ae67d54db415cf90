package oidc_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/nodeop"
	"github.com/go-jose/go-jose/v4"
)

// The library pieces against panva's oidc-provider, a certified provider,
// in its FAPI 2.0 profile (client assertions with aud = the issuer only,
// DPoP with nonces required): a PAR request and client credentials grants
// authenticated by ClientAssertions and carrying DPoPKey proofs, the first
// refused with use_dpop_nonce and retried with the nonce that UseDPoPNonce
// found and NonceCache kept; the next at once with the kept nonce. The
// access token is bound to the key: its cnf.jkt is DPoPKey.JKT.
func TestClientAssertionAndDPoPAgainstOIDCProvider(t *testing.T) {
	const resource = "https://api.example.test"
	clients := []struct {
		id   string
		keys *oidc.SigningKeys
	}{
		{"svc-es256", mustKeys(t, pkcs8(t, ecKey256()))},
		{"svc-ps256", mustKeys(t, pkcs8(t, rsaKey2048()))},
	}
	opts := nodeop.Options{
		FAPI2: true, PAR: true, DPoP: true, DPoPNonce: true, ClientCredentials: true,
		Resource: resource, ResourceScope: "api",
	}
	for _, c := range clients {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(c.keys.PublicJWKS(), &set); err != nil {
			t.Fatal(err)
		}
		opts.Clients = append(opts.Clients, nodeop.Client{
			ClientID: c.id, TokenEndpointAuthMethod: "private_key_jwt", JWKS: &set,
			DPoPBoundAccessTokens: true,
			GrantTypes:            []string{"authorization_code", "client_credentials"},
			RedirectURIs:          []string{"https://app.example.test/bff/callback"},
		})
	}
	// One provider for both clients: starting one takes seconds.
	p := nodeop.Start(t, opts)
	for _, c := range clients {
		t.Run(c.keys.Algorithm(), func(t *testing.T) {
			assertions, err := oidc.NewClientAssertions(c.keys, oidc.AssertionOptions{ClientID: c.id, Audience: p.Issuer})
			if err != nil {
				t.Fatal(err)
			}
			// Each client its own DPoP key and nonce memory, as each
			// session has its own key.
			dpop := newDPoPKey(t)
			nonces := oidc.NewNonceCache(0)
			hc := p.CA.HTTPClient(t)

			// post sends form with a client assertion and a fresh proof,
			// once more after use_dpop_nonce.
			post := func(endpoint string, form url.Values) (status int, body map[string]any, retried bool) {
				t.Helper()
				u, err := url.Parse(endpoint)
				if err != nil {
					t.Fatal(err)
				}
				origin := oidc.DPoPOrigin(u)
				for attempt := 0; ; attempt++ {
					v := url.Values{}
					for k, vs := range form {
						v[k] = vs
					}
					if err := assertions.AddTo(v); err != nil {
						t.Fatal(err)
					}
					proof, err := dpop.Proof(http.MethodPost, endpoint, "", nonces.Get(origin), time.Now())
					if err != nil {
						t.Fatal(err)
					}
					req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint, strings.NewReader(v.Encode()))
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set(oidc.HeaderDPoP, proof)
					resp, err := hc.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
					resp.Body.Close()
					if err != nil {
						t.Fatal(err)
					}
					if n := resp.Header.Get(oidc.HeaderDPoPNonce); n != "" {
						nonces.Set(origin, n)
					}
					if _, ok := oidc.UseDPoPNonce(resp.StatusCode, resp.Header, raw); ok && attempt == 0 {
						continue
					}
					body = map[string]any{}
					_ = json.Unmarshal(raw, &body)
					return resp.StatusCode, body, attempt > 0
				}
			}

			// PAR: no DPoP nonce kept yet.
			status, body, retried := post(p.PAREndpoint, url.Values{
				"response_type": {"code"}, "redirect_uri": {"https://app.example.test/bff/callback"},
				"scope": {"openid"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGjSstw-cM"},
				"code_challenge_method": {"S256"}, "dpop_jkt": {dpop.JKT()},
			})
			if status != http.StatusCreated || !retried {
				t.Fatalf("PAR: got %d %v (retried %v), want 201 after one use_dpop_nonce", status, body, retried)
			}

			grant := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}, "resource": {resource}}
			for i := range 2 {
				status, body, retried = post(p.TokenEndpoint, grant)
				if status != http.StatusOK {
					t.Fatalf("token request %d: got %d %v, want 200", i+1, status, body)
				}
				if retried {
					t.Errorf("token request %d: retried, want the kept nonce to be accepted at once", i+1)
				}
				if body["token_type"] != oidc.DPoPScheme {
					t.Errorf("token_type: got %v, want DPoP", body["token_type"])
				}
				at, _ := body["access_token"].(string)
				if got := tokenJKT(t, at); got != dpop.JKT() {
					t.Errorf("access token cnf.jkt: got %q, want %q", got, dpop.JKT())
				}
			}
		})
	}
}

func mustKeys(t *testing.T, data []byte) *oidc.SigningKeys {
	t.Helper()
	keys, err := oidc.ParseSigningKeys("client.key", data)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// tokenJKT returns the cnf.jkt claim of a JWT access token, unverified:
// nodeop's own tests check the provider's signatures.
func tokenJKT(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.Cnf.JKT
}
