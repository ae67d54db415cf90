package oidc_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
)

// The RFC 9449 §7.1 example access token and the ath its §4.2 example
// proof carries for it.
const (
	rfcAccessToken = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	rfcATH         = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
)

func TestDPoPConstantsSpelling(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{oidc.HeaderDPoP, "DPoP"},
		{oidc.HeaderDPoPNonce, "DPoP-Nonce"},
		{oidc.DPoPScheme, "DPoP"},
		{oidc.DPoPProofType, "dpop+jwt"},
		{oidc.ErrorUseDPoPNonce, "use_dpop_nonce"},
		{oidc.ErrorInvalidDPoPProof, "invalid_dpop_proof"},
		{oidc.ClientAssertionType, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func newDPoPKey(t testing.TB) *oidc.DPoPKey {
	t.Helper()
	k, err := oidc.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// decodeProof splits a proof into its header and claims, unverified.
func decodeProof(t *testing.T, proof string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		t.Fatalf("proof has %d parts, want 3", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func TestDPoPProof(t *testing.T) {
	k := newDPoPKey(t)
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name                  string
		htm, htu, token, nonc string
		want                  map[string]any // claims but jti
	}{
		{"token request", "POST", "https://IdP.example.com:443/token?x=1#frag", "", "",
			map[string]any{"htm": "POST", "htu": "https://idp.example.com/token", "iat": float64(now.Unix())}},
		{"token request with a nonce", "POST", "https://idp.example.com/token", "", "eyJ7S_zG.eyJH0-Z.HX4w-7v",
			map[string]any{"htm": "POST", "htu": "https://idp.example.com/token", "iat": float64(now.Unix()), "nonce": "eyJ7S_zG.eyJH0-Z.HX4w-7v"}},
		{"resource request (RFC 9449 §7.1 token)", "GET", "https://resource.example.org/protectedresource", rfcAccessToken, "",
			map[string]any{"htm": "GET", "htu": "https://resource.example.org/protectedresource", "iat": float64(now.Unix()), "ath": rfcATH}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proof, err := k.Proof(tt.htm, tt.htu, tt.token, tt.nonc, now)
			if err != nil {
				t.Fatal(err)
			}
			header, claims := decodeProof(t, proof)
			jwk, _ := header["jwk"].(map[string]any)
			if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" || len(header) != 3 {
				t.Errorf("header: got %v, want exactly typ dpop+jwt, alg ES256 and jwk", header)
			}
			if diff := cmp.Diff([]string{"crv", "kty", "x", "y"}, keysOf(jwk)); diff != "" {
				t.Errorf("jwk members (-want +got):\n%s", diff)
			}
			if jti, _ := claims["jti"].(string); len(jti) < 22 {
				t.Errorf("jti: got %q, want at least 128 random bits", jti)
			}
			delete(claims, "jti")
			if diff := cmp.Diff(tt.want, claims); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
			p, err := oidc.VerifyDPoPProof(proof, tt.htm, tt.htu, oidc.DPoPCheck{Now: now, AccessToken: tt.token, Nonce: tt.nonc})
			if err != nil {
				t.Fatalf("own proof does not verify: %v", err)
			}
			if p.JKT != k.JKT() {
				t.Errorf("JKT: got %q, want the key's %q", p.JKT, k.JKT())
			}
		})
	}
}

func keysOf(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func TestDPoPProofUniqueJTI(t *testing.T) {
	k := newDPoPKey(t)
	seen := map[string]bool{}
	for range 100 {
		proof, err := k.Proof("GET", "https://api.example.com/x", "", "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		_, c := decodeProof(t, proof)
		jti := c["jti"].(string)
		if seen[jti] {
			t.Fatalf("jti %q repeated", jti)
		}
		seen[jti] = true
	}
}

func TestDPoPProofRefuses(t *testing.T) {
	k := newDPoPKey(t)
	tests := []struct {
		name, htm, htu, nonce, want string
	}{
		{"no method", "", "https://a.example/", "", "htm"},
		{"method with a space", "GE T", "https://a.example/", "", "htm"},
		{"relative URL", "GET", "/token", "", "htu"},
		{"ftp URL", "GET", "ftp://a.example/x", "", "htu"},
		{"opaque URL", "GET", "https:a.example", "", "htu"},
		{"user information", "GET", "https://user:SECRETPW@a.example/", "", "user information"},
		{"not a URL", "GET", "https://a.example/%zz", "", "htu"},
		{"nonce with a quote", "GET", "https://a.example/", `a"b`, "nonce"},
		{"nonce too long", "GET", "https://a.example/", strings.Repeat("n", oidc.MaxDPoPNonceBytes+1), "nonce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := k.Proof(tt.htm, tt.htu, "SECRETTOKEN", tt.nonce, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %s", err, tt.want)
			}
			for _, s := range []string{"SECRETPW", "SECRETTOKEN", "a.example"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q quotes %q", err, s)
				}
			}
		})
	}
}

func TestDPoPHTU(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://idp.example.com/token", "https://idp.example.com/token"},
		{"HTTPS://IdP.Example.COM/Token", "https://idp.example.com/Token"},
		{"https://idp.example.com:443/token", "https://idp.example.com/token"},
		{"http://idp.example.com:80/token", "http://idp.example.com/token"},
		{"https://idp.example.com:8443/token", "https://idp.example.com:8443/token"},
		{"http://idp.example.com:443/token", "http://idp.example.com:443/token"},
		{"https://idp.example.com", "https://idp.example.com/"},
		{"https://idp.example.com:/x", "https://idp.example.com/x"},
		{"https://[::1]:443/x", "https://[::1]/x"},
		{"https://api.example.com/a/b?q=1&r=2#top", "https://api.example.com/a/b"},
		{"https://api.example.com/a%2Fb/c%7e", "https://api.example.com/a%2Fb/c%7e"},
		{"https://api.example.com/a/../b", "https://api.example.com/a/../b"},
	}
	for _, tt := range tests {
		got, err := oidc.DPoPHTU(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("DPoPHTU(%q): got %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestDPoPKeyMarshal(t *testing.T) {
	k := newDPoPKey(t)
	b, err := k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 33 || b[0] != 1 {
		t.Fatalf("got %d bytes starting %x, want 33 starting 01", len(b), b[:1])
	}
	k2, err := oidc.UnmarshalDPoPKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if k2.JKT() != k.JKT() {
		t.Errorf("JKT after a round trip: got %q, want %q", k2.JKT(), k.JKT())
	}
	b2, err := k2.MarshalBinary()
	if err != nil || !bytes.Equal(b, b2) {
		t.Errorf("marshalled again: got %x, %v, want the same bytes", b2, err)
	}
	proof, err := k2.Proof("GET", "https://api.example.com/", "", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p, err := oidc.VerifyDPoPProof(proof, "GET", "https://api.example.com/", oidc.DPoPCheck{}); err != nil || p.JKT != k.JKT() {
		t.Errorf("proof of the unmarshalled key: got %+v, %v, want the original key's thumbprint", p, err)
	}
	if other := newDPoPKey(t); other.JKT() == k.JKT() {
		t.Error("two new keys have the same thumbprint")
	}
}

func TestUnmarshalDPoPKeyRefuses(t *testing.T) {
	k := newDPoPKey(t)
	good, err := k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	order := elliptic.P256().Params().N.FillBytes(make([]byte, 32))
	tests := map[string][]byte{
		"empty":           nil,
		"the raw scalar":  good[1:],
		"unknown tag":     append([]byte{2}, good[1:]...),
		"too long":        append(bytes.Clone(good), 0),
		"zero scalar":     append([]byte{1}, make([]byte, 32)...),
		"the curve order": append([]byte{1}, order...),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := oidc.UnmarshalDPoPKey(b)
			if err == nil {
				t.Fatal("got no error, want one")
			}
			if len(b) > 8 && strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(b[1:9])) {
				t.Errorf("error %q quotes the key", err)
			}
		})
	}
}

// The thumbprint is RFC 7638's: the same as go-jose computes from the
// proof's jwk header.
func TestDPoPKeyJKT(t *testing.T) {
	k := newDPoPKey(t)
	proof, err := k.Proof("GET", "https://api.example.com/", "", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.JKT(), thumb(t, jws.Signatures[0].Protected.JSONWebKey.Key); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDPoPProofConcurrent(t *testing.T) {
	k := newDPoPKey(t)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for range 50 {
				var proof string
				if proof, err = k.Proof("GET", "https://api.example.com/x", "tok", "", time.Now()); err != nil {
					break
				}
				if _, err = oidc.VerifyDPoPProof(proof, "GET", "https://api.example.com/x", oidc.DPoPCheck{AccessToken: "tok"}); err != nil {
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

// BenchmarkDPoPProof measures a proof for an upstream call (htm, htu with
// a query to strip, ath, nonce) three ways:
//
//   - key: DPoPKey.Proof, the parsed key and its encoded jwk reused;
//   - unmarshal+key: UnmarshalDPoPKey then Proof, the cost when the key is
//     unsealed from the session for every request;
//   - gojose-embedjwk: the baseline, go-jose's ordinary path (a signer
//     with EmbedJWK, reused; claims as a map through the jwt builder),
//     which encodes the public key for every proof.
func BenchmarkDPoPProof(b *testing.B) {
	const (
		htu   = "https://orders.internal:8443/api/orders/42?expand=items"
		token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl"
		nonce = "eyJ7S_zG.eyJH0-Z.HX4w-7v"
	)
	k := newDPoPKey(b)
	sealed, err := k.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	check := func(proof string) {
		if _, err := oidc.VerifyDPoPProof(proof, "GET", htu, oidc.DPoPCheck{AccessToken: token, Nonce: nonce}); err != nil {
			b.Fatalf("the benchmarked proof does not verify: %v", err)
		}
	}

	b.Run("key", func(b *testing.B) {
		p, err := k.Proof("GET", htu, token, nonce, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		check(p)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.Proof("GET", htu, token, nonce, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("unmarshal+key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k, err := oidc.UnmarshalDPoPKey(sealed)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := k.Proof("GET", htu, token, nonce, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("gojose-embedjwk", func(b *testing.B) {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
			(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
		if err != nil {
			b.Fatal(err)
		}
		naive := func() (string, error) {
			u, err := oidc.DPoPHTU(htu)
			if err != nil {
				return "", err
			}
			jti := make([]byte, 16)
			_, _ = rand.Read(jti)
			return jwt.Signed(signer).Claims(map[string]any{
				"jti":   base64.RawURLEncoding.EncodeToString(jti),
				"htm":   "GET",
				"htu":   u,
				"iat":   time.Now().Unix(),
				"ath":   athOf(token),
				"nonce": nonce,
			}).Serialize()
		}
		p, err := naive()
		if err != nil {
			b.Fatal(err)
		}
		check(p)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := naive(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyDPoPProof measures the check of one proof, as POST
// /bff/token or an upstream would make it.
func BenchmarkVerifyDPoPProof(b *testing.B) {
	k := newDPoPKey(b)
	const htu = "https://idp.example.com/token"
	proof, err := k.Proof("POST", htu, "", "", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := oidc.VerifyDPoPProof(proof, "POST", htu, oidc.DPoPCheck{}); err != nil {
			b.Fatal(err)
		}
	}
}
