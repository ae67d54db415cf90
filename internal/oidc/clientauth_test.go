package oidc_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/hostile"
	"github.com/cloakroom/cloakroom/internal/tlstest"
	"github.com/go-jose/go-jose/v4"
)

// sent is what the provider received on one call.
type sent struct {
	path  string
	basic bool
	form  url.Values
}

// recordingProvider is a hostile provider that records every token and
// revocation request.
func recordingProvider(t *testing.T) (*hostile.Provider, func() []sent) {
	t.Helper()
	p := hostile.New(t)
	var (
		mu  sync.Mutex
		got []sent
	)
	record := func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _, basic := r.BasicAuth()
			mu.Lock()
			got = append(got, sent{r.URL.Path, basic, r.PostForm})
			mu.Unlock()
			next(w, r)
		}
	}
	p.Token = record(func(w http.ResponseWriter, r *http.Request) {
		hostile.Status(http.StatusOK, p.TokenResponse(""))(w, r)
	})
	p.Revocation = record(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	return p, func() []sent {
		mu.Lock()
		defer mu.Unlock()
		return append([]sent(nil), got...)
	}
}

// TestPrivateKeyJWTEveryCall: with private_key_jwt every grant and the
// revocation carry client_id and a new client assertion (RFC 7523: iss =
// sub = client_id, aud = the issuer, a jti never seen before, exp at most
// 60 s after iat) signed by the configured key, and no secret and no
// Basic authentication; the code exchange keeps its PKCE verifier and
// redirect_uri. The service client signs with its own key.
func TestPrivateKeyJWTEveryCall(t *testing.T) {
	p, requests := recordingProvider(t)
	mainKeys, svcKeys := mustKeys(t, pkcs8(t, rsaKey2048())), mustKeys(t, pkcs8(t, ecKey256()))
	o := options(p)
	o.ClientSecret, o.ClientAuth, o.SigningKeys = "", oidc.PrivateKeyJWT, mainKeys
	c := oidc.New(o)
	svc := c.WithCredentials(oidc.Credentials{ClientID: "svc", ClientAuth: oidc.PrivateKeyJWT, SigningKeys: svcKeys})
	if err := c.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The answer has no ID token: the exchange fails and revokes the
	// answer's two tokens, which makes three requests.
	_, _ = c.Exchange(t.Context(), "the-code", "the-verifier", hostile.DefaultNonce)
	if _, err := c.Refresh(t.Context(), "rt-1", "", oidc.TokenParams{}); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := c.ClientCredentials(t.Context(), oidc.TokenParams{}); err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	if _, err := svc.ExchangeToken(t.Context(), "user-token", oidc.TokenParams{}); err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	if err := c.Revoke(t.Context(), "rt-2", "refresh_token"); err != nil {
		t.Fatalf("revoke: %v", err)
	}

	got := requests()
	if len(got) != 7 {
		t.Fatalf("got %d requests, want 7", len(got))
	}
	if f := got[0].form; f.Get("code") != "the-code" || f.Get("code_verifier") != "the-verifier" || f.Get("redirect_uri") != o.RedirectURL || f.Get("grant_type") != "authorization_code" {
		t.Errorf("code exchange form %v, want code, code_verifier and redirect_uri", f)
	}
	jtis := map[string]bool{}
	for i, r := range got {
		id, keys := p.ClientID, mainKeys
		if i == 5 {
			id, keys = "svc", svcKeys
		}
		if r.basic || r.form.Has("client_secret") {
			t.Errorf("request %d (%s): a secret was sent", i, r.path)
		}
		if r.form.Get("client_id") != id || r.form.Get(oidc.ParamClientAssertionType) != oidc.ClientAssertionType {
			t.Errorf("request %d: client_id %q, assertion type %q", i, r.form.Get("client_id"), r.form.Get(oidc.ParamClientAssertionType))
		}
		claims := checkAssertion(t, keys, r.form.Get(oidc.ParamClientAssertion))
		if claims.Iss != id || claims.Sub != id || claims.Aud != p.Issuer {
			t.Errorf("request %d: iss %q sub %q aud %q, want %q %q %q", i, claims.Iss, claims.Sub, claims.Aud, id, id, p.Issuer)
		}
		if life := claims.Exp - claims.Iat; life <= 0 || life > 60 {
			t.Errorf("request %d: exp - iat = %d s, want 1..60", i, life)
		}
		if jtis[claims.JTI] {
			t.Errorf("request %d: jti %q used before", i, claims.JTI)
		}
		jtis[claims.JTI] = true
	}
}

type sentAssertion struct {
	Iss, Sub, Aud string
	JTI           string `json:"jti"`
	Iat, Exp      int64
}

func checkAssertion(t *testing.T, keys *oidc.SigningKeys, raw string) sentAssertion {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(keys.PublicJWKS(), &set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.PS256, jose.ES256})
	if err != nil {
		t.Fatalf("assertion: %v", err)
	}
	payload, err := jws.Verify(&set)
	if err != nil {
		t.Fatalf("assertion does not verify with the key's public half: %v", err)
	}
	var c sentAssertion
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMTLSClientAuthForm: tls_client_auth and self_signed_tls_client_auth
// send client_id in the form and nothing else of the client's: the
// certificate is the credential. Without a certificate every call fails
// before it is sent.
func TestMTLSClientAuthForm(t *testing.T) {
	ca := tlstest.NewCA(t, "Client CA")
	cert := ca.Client(t, "gateway").TLS
	for _, method := range []string{oidc.TLSClientAuth, oidc.SelfSignedTLSClientAuth} {
		t.Run(method, func(t *testing.T) {
			p, requests := recordingProvider(t)
			o := options(p)
			o.ClientAuth, o.ClientCertificate = method, &cert
			c := oidc.New(o)
			if err := c.Discover(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ClientCredentials(t.Context(), oidc.TokenParams{}); err != nil {
				t.Fatal(err)
			}
			got := requests()
			if len(got) != 1 || got[0].basic || len(got[0].form) != 2 || got[0].form.Get("client_id") != p.ClientID {
				t.Errorf("got %+v, want one request with grant_type and client_id only", got)
			}

			o.ClientCertificate = nil
			if _, err := oidc.New(o).ClientCredentials(t.Context(), oidc.TokenParams{}); err == nil {
				t.Errorf("without a certificate: got no error")
			}
		})
	}
}

// TestAssertionCertificateHeaders: with a certificate of the signing key,
// assertions name it by x5t#S256 and x5t (Entra ID's certificate
// credentials); a certificate of another key adds nothing.
func TestAssertionCertificateHeaders(t *testing.T) {
	key := ecKey256()
	keys := mustKeys(t, pkcs8(t, key))
	ca := tlstest.NewCA(t, "Assertion CA")
	own := selfSigned(t, key)
	other := ca.Client(t, "other").TLS.Leaf
	for _, tt := range []struct {
		name string
		cert *x509.Certificate
		want string // x5t#S256, "" for none
	}{
		{"certificate of the key", own, sha256B64(own.Raw)},
		{"certificate of another key", other, ""},
		{"no certificate", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := oidc.NewClientAssertions(keys, oidc.AssertionOptions{ClientID: "c", Audience: "https://idp.example", Certificate: tt.cert})
			if err != nil {
				t.Fatal(err)
			}
			raw, err := a.Assertion()
			if err != nil {
				t.Fatal(err)
			}
			jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			h := jws.Signatures[0].Protected
			got, _ := h.ExtraHeaders["x5t#S256"].(string)
			if got != tt.want {
				t.Errorf("x5t#S256: got %q, want %q", got, tt.want)
			}
			if _, ok := h.ExtraHeaders["x5t"]; ok != (tt.want != "") {
				t.Errorf("x5t present %v, want %v", ok, tt.want != "")
			}
			if h.KeyID != keys.KeyID() {
				t.Errorf("kid: got %q, want %q", h.KeyID, keys.KeyID())
			}
		})
	}
}

func sha256B64(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestMergeJWKS: keys in order, a key shared by two sets once, two keys
// with one kid refused.
func TestMergeJWKS(t *testing.T) {
	a := mustKeys(t, pkcs8(t, mustEC(elliptic.P256())))
	b := mustKeys(t, pkcs8(t, mustEC(elliptic.P256())))
	sameKid := func(k *oidc.SigningKeys) *oidc.SigningKeys {
		t.Helper()
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(k.PublicJWKS(), &set); err != nil {
			t.Fatal(err)
		}
		priv := mustEC(elliptic.P256())
		jwk := jose.JSONWebKey{Key: priv, KeyID: set.Keys[0].KeyID}
		data, err := json.Marshal(jwk)
		if err != nil {
			t.Fatal(err)
		}
		return mustKeys(t, data)
	}
	kids := func(data []byte) []string {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(data, &set); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range set.Keys {
			if !k.IsPublic() {
				t.Errorf("key %q is not public", k.KeyID)
			}
			out = append(out, k.KeyID)
		}
		return out
	}
	if got, err := oidc.MergeJWKS(nil, nil); got != nil || err != nil {
		t.Errorf("no keys: got %s, %v; want nil", got, err)
	}
	got, err := oidc.MergeJWKS(a, b, a)
	if err != nil {
		t.Fatal(err)
	}
	if k := kids(got); len(k) != 2 || k[0] != a.KeyID() || k[1] != b.KeyID() {
		t.Errorf("got kids %q, want %q then %q", k, a.KeyID(), b.KeyID())
	}
	if _, err := oidc.MergeJWKS(a, sameKid(a)); err == nil {
		t.Error("two keys with one kid: got no error")
	}
}

// selfSigned is a self-signed certificate for key.
func selfSigned(t *testing.T, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gateway"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestPrivateKeyJWTEndpointAudience: with AudienceEndpoint (Okta, Entra
// ID) each assertion's aud is the URL of the endpoint it is sent to.
func TestPrivateKeyJWTEndpointAudience(t *testing.T) {
	p, requests := recordingProvider(t)
	keys := mustKeys(t, pkcs8(t, ecKey256()))
	o := options(p)
	o.ClientSecret, o.ClientAuth, o.SigningKeys, o.AssertionAudience = "", oidc.PrivateKeyJWT, keys, oidc.AudienceEndpoint
	c := oidc.New(o)
	if err := c.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClientCredentials(t.Context(), oidc.TokenParams{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Revoke(t.Context(), "rt", "refresh_token"); err != nil {
		t.Fatal(err)
	}
	got := requests()
	if len(got) != 2 {
		t.Fatalf("got %d requests, want 2", len(got))
	}
	for _, r := range got {
		if aud := checkAssertion(t, keys, r.form.Get(oidc.ParamClientAssertion)).Aud; aud != p.URL+r.path {
			t.Errorf("%s: aud %q, want %q", r.path, aud, p.URL+r.path)
		}
	}
}
