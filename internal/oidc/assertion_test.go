package oidc_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

const testIssuer = "https://idp.example.com"

// The assertion, verified with go-jose against the published JWKS, says
// what RFC 7523 §3 asks.
func TestClientAssertionRoundTrip(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	for _, tt := range []struct {
		name string
		key  []byte
		alg  string
	}{
		{"EC", jwkJSON(t, ecKey256(), map[string]any{"kid": "ec-1"}), "ES256"},
		{"RSA", pkcs8(t, rsaKey2048()), "PS256"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := oidc.ParseSigningKeys("client.key", tt.key)
			if err != nil {
				t.Fatal(err)
			}
			a, err := oidc.NewClientAssertions(keys, oidc.AssertionOptions{
				ClientID: "web",
				Audience: testIssuer,
				Now:      func() time.Time { return clock },
			})
			if err != nil {
				t.Fatal(err)
			}
			v, err := a.Params()
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Get("client_assertion_type"); got != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
				t.Errorf("client_assertion_type: got %q, want the RFC 7523 URN", got)
			}
			if got := v.Get("client_id"); got != "web" {
				t.Errorf("client_id: got %q, want %q", got, "web")
			}
			header, claims := verifyAssertion(t, keys, v.Get("client_assertion"))
			wantHeader := map[string]any{"alg": tt.alg, "kid": keys.KeyID(), "typ": "JWT"}
			if diff := cmp.Diff(wantHeader, header); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			jti, _ := claims["jti"].(string)
			if len(jti) < 22 {
				t.Errorf("jti: got %q, want at least 128 random bits", jti)
			}
			delete(claims, "jti")
			wantClaims := map[string]any{
				"iss": "web", "sub": "web", "aud": testIssuer,
				"iat": float64(clock.Unix()), "exp": float64(clock.Unix() + 60),
			}
			if diff := cmp.Diff(wantClaims, claims); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
		})
	}
}

// verifyAssertion verifies s against keys.PublicJWKS with go-jose and
// returns its header and claims.
func verifyAssertion(t *testing.T, keys *oidc.SigningKeys, s string) (map[string]any, map[string]any) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(keys.PublicJWKS(), &set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(s, []jose.SignatureAlgorithm{jose.ES256, jose.PS256})
	if err != nil {
		t.Fatalf("parse assertion: %v", err)
	}
	kid := jws.Signatures[0].Protected.KeyID
	found := set.Key(kid)
	if len(found) != 1 {
		t.Fatalf("got %d published keys with kid %q, want 1", len(found), kid)
	}
	payload, err := jws.Verify(found[0])
	if err != nil {
		t.Fatalf("assertion does not verify against the published key: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	headerJSON, err := base64.RawURLEncoding.DecodeString(strings.SplitN(s, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	var header map[string]any
	if err := json.Unmarshal(headerJSON, &header); err != nil {
		t.Fatal(err)
	}
	return header, claims
}

func TestClientAssertionFreshJTIAndLifetime(t *testing.T) {
	keys, err := oidc.ParseSigningKeys("client.key", pkcs8(t, ecKey256()))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	a, err := oidc.NewClientAssertions(keys, oidc.AssertionOptions{
		ClientID: "web", Audience: testIssuer + "/token", Lifetime: 30 * time.Second,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 50 {
		s, err := a.Assertion()
		if err != nil {
			t.Fatal(err)
		}
		_, c := verifyAssertion(t, keys, s)
		if seen[c["jti"].(string)] {
			t.Fatalf("jti %q repeated", c["jti"])
		}
		seen[c["jti"].(string)] = true
		if got, want := c["exp"].(float64)-c["iat"].(float64), 30.0; got != want {
			t.Errorf("exp - iat: got %v, want %v", got, want)
		}
		if got := c["aud"]; got != testIssuer+"/token" {
			t.Errorf("aud: got %v, want the audience given", got)
		}
	}
}

func TestNewClientAssertionsRefuses(t *testing.T) {
	keys, err := oidc.ParseSigningKeys("client.key", pkcs8(t, ecKey256()))
	if err != nil {
		t.Fatal(err)
	}
	ok := oidc.AssertionOptions{ClientID: "web", Audience: testIssuer}
	tests := []struct {
		name string
		keys *oidc.SigningKeys
		edit func(*oidc.AssertionOptions)
		want string
	}{
		{"no key", nil, func(*oidc.AssertionOptions) {}, "signing key"},
		{"no client id", keys, func(o *oidc.AssertionOptions) { o.ClientID = "" }, "client id"},
		{"no audience", keys, func(o *oidc.AssertionOptions) { o.Audience = "" }, "audience"},
		{"lifetime over 60s", keys, func(o *oidc.AssertionOptions) { o.Lifetime = 61 * time.Second }, "lifetime"},
		{"lifetime under 1s", keys, func(o *oidc.AssertionOptions) { o.Lifetime = time.Millisecond }, "lifetime"},
		{"negative lifetime", keys, func(o *oidc.AssertionOptions) { o.Lifetime = -time.Second }, "lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			_, err := oidc.NewClientAssertions(tt.keys, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestClientAssertionConcurrent(t *testing.T) {
	keys, err := oidc.ParseSigningKeys("client.key", pkcs8(t, ecKey256()))
	if err != nil {
		t.Fatal(err)
	}
	a, err := oidc.NewClientAssertions(keys, oidc.AssertionOptions{ClientID: "web", Audience: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for range 20 {
				if _, err = a.Assertion(); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
