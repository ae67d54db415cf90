package oidc_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/go-jose/go-jose/v4"
)

func athOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// proofSpec describes a proof made by hand, so that tests can make the
// proofs DPoPKey never would.
type proofSpec struct {
	alg     jose.SignatureAlgorithm
	signer  any             // private key that signs
	jwk     json.RawMessage // the jwk header; default: signer's public key
	noJWK   bool
	typ     any // default dpop+jwt; "" to leave it out
	claims  map[string]any
	headers map[jose.HeaderKey]any
	payload []byte // instead of claims
}

const (
	vHTM = "POST"
	vHTU = "https://idp.example.com/token"
)

var vNow = time.Unix(1_700_000_000, 0)

func goodClaims() map[string]any {
	return map[string]any{"jti": "jti-1", "htm": vHTM, "htu": vHTU, "iat": vNow.Unix()}
}

func makeProof(t testing.TB, s proofSpec) string {
	t.Helper()
	if s.alg == "" {
		s.alg = jose.ES256
	}
	if s.signer == nil {
		s.signer = ecKey256()
	}
	opts := &jose.SignerOptions{}
	switch s.typ {
	case nil:
		opts.WithType("dpop+jwt")
	case "":
	default:
		opts.WithHeader("typ", s.typ)
	}
	if !s.noJWK {
		jwk := s.jwk
		if jwk == nil {
			pub := jose.JSONWebKey{Key: s.signer}
			pub = pub.Public()
			var err error
			if jwk, err = json.Marshal(pub); err != nil {
				t.Fatal(err)
			}
		}
		opts.WithHeader("jwk", jwk)
	}
	for k, v := range s.headers {
		opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.signer}, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := s.claims
	if c == nil {
		c = goodClaims()
	}
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if s.payload != nil {
		payload = s.payload
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func withClaims(edit func(map[string]any)) map[string]any {
	c := goodClaims()
	edit(c)
	return c
}

func TestVerifyDPoPProofAccepts(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		spec       proofSpec
		htm, htu   string
		check      oidc.DPoPCheck
		wantJKTFor any
	}{
		{"ES256", proofSpec{}, vHTM, vHTU, oidc.DPoPCheck{}, ecKey256()},
		{"PS256", proofSpec{alg: jose.PS256, signer: rsaKey2048()}, vHTM, vHTU, oidc.DPoPCheck{}, rsaKey2048()},
		{"RS256", proofSpec{alg: jose.RS256, signer: rsaKey2048()}, vHTM, vHTU, oidc.DPoPCheck{}, rsaKey2048()},
		{"EdDSA", proofSpec{alg: jose.EdDSA, signer: edKey}, vHTM, vHTU, oidc.DPoPCheck{}, edKey},
		{"typ application/dpop+jwt", proofSpec{typ: "application/DPoP+JWT"}, vHTM, vHTU, oidc.DPoPCheck{}, ecKey256()},
		{"request URL with query and fragment", proofSpec{}, vHTM, vHTU + "?a=b#c", oidc.DPoPCheck{}, ecKey256()},
		{"htu normalised on both sides", proofSpec{claims: withClaims(func(c map[string]any) { c["htu"] = "https://idp.example.com/a%7e%2f" })},
			vHTM, "HTTPS://IDP.example.com:443/a~%2F", oidc.DPoPCheck{}, ecKey256()},
		{"iat at the window's edges", proofSpec{claims: withClaims(func(c map[string]any) { c["iat"] = vNow.Unix() - 60 })}, vHTM, vHTU, oidc.DPoPCheck{}, ecKey256()},
		{"iat in the future, within the window", proofSpec{claims: withClaims(func(c map[string]any) { c["iat"] = vNow.Unix() + 60 })}, vHTM, vHTU, oidc.DPoPCheck{}, ecKey256()},
		{"wider window", proofSpec{claims: withClaims(func(c map[string]any) { c["iat"] = vNow.Unix() - 290 })}, vHTM, vHTU, oidc.DPoPCheck{Window: 5 * time.Minute}, ecKey256()},
		{"ath and nonce", proofSpec{claims: withClaims(func(c map[string]any) { c["ath"] = rfcATH; c["nonce"] = "n-1" })},
			vHTM, vHTU, oidc.DPoPCheck{AccessToken: rfcAccessToken, Nonce: "n-1"}, ecKey256()},
		{"a nonce not asked for", proofSpec{claims: withClaims(func(c map[string]any) { c["nonce"] = "n-1" })}, vHTM, vHTU, oidc.DPoPCheck{}, ecKey256()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := tt.check
			check.Now = vNow
			p, err := oidc.VerifyDPoPProof(makeProof(t, tt.spec), tt.htm, tt.htu, check)
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if want := thumb(t, publicOf(tt.wantJKTFor)); p.JKT != want {
				t.Errorf("JKT: got %q, want %q", p.JKT, want)
			}
			if p.ID != "jti-1" || p.Method != tt.htm || !p.IssuedAt.Equal(time.Unix(int64(tt.spec.claimsOr()["iat"].(int64)), 0)) {
				t.Errorf("got %+v, want the proof's jti, htm and iat", p)
			}
		})
	}
}

func (s proofSpec) claimsOr() map[string]any {
	if s.claims == nil {
		return goodClaims()
	}
	return s.claims
}

func publicOf(key any) any {
	jwk := jose.JSONWebKey{Key: key}
	return jwk.Public().Key
}

func TestVerifyDPoPProofRefuses(t *testing.T) {
	ecK := ecKey256()
	privateJWK := jwkJSON(t, ecK, nil) // with d
	otherJWK := jwkJSON(t, &mustEC(ecK.Curve).PublicKey, nil)
	unsigned := func(header, claims string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + "."
	}
	pubJWK := jwkJSON(t, &ecK.PublicKey, nil)
	goodJSON, _ := json.Marshal(goodClaims())
	hmacKey := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name  string
		proof string
		htm   string
		htu   string
		check oidc.DPoPCheck
		want  string
	}{
		{"empty", "", vHTM, vHTU, oidc.DPoPCheck{}, "no proof"},
		{"too long", strings.Repeat("a", oidc.MaxDPoPProofBytes+1), vHTM, vHTU, oidc.DPoPCheck{}, "longer than"},
		{"garbage", "not.a.proof", vHTM, vHTU, oidc.DPoPCheck{}, "malformed"},
		{"alg none", unsigned(`{"alg":"none","typ":"dpop+jwt","jwk":`+string(pubJWK)+`}`, string(goodJSON)), vHTM, vHTU, oidc.DPoPCheck{}, `algorithm "none"`},
		{"HS256", makeProof(t, proofSpec{alg: jose.HS256, signer: hmacKey, jwk: json.RawMessage(pubJWK)}), vHTM, vHTU, oidc.DPoPCheck{}, `algorithm "HS256"`},
		{"ES384", makeProof(t, proofSpec{alg: jose.ES384, signer: ecKey384()}), vHTM, vHTU, oidc.DPoPCheck{}, `algorithm "ES384"`},
		{"RS256 when narrowed to FAPI 2.0's", makeProof(t, proofSpec{alg: jose.RS256, signer: rsaKey2048()}), vHTM, vHTU,
			oidc.DPoPCheck{Algorithms: []string{"ES256", "PS256", "EdDSA"}}, `algorithm "RS256"`},
		{"RSA 1024", makeProof(t, proofSpec{alg: jose.PS256, signer: rsaKey1024()}), vHTM, vHTU, oidc.DPoPCheck{}, "1024 bits"},
		{"ES256 signed, RSA jwk", makeProof(t, proofSpec{jwk: jwkJSON(t, &rsaKey2048().PublicKey, nil)}), vHTM, vHTU, oidc.DPoPCheck{}, "does not suit"},
		{"private key in the jwk header", makeProof(t, proofSpec{jwk: privateJWK}), vHTM, vHTU, oidc.DPoPCheck{}, "private parameters"},
		{"symmetric jwk", makeProof(t, proofSpec{jwk: json.RawMessage(`{"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}`)}), vHTM, vHTU, oidc.DPoPCheck{}, "private parameters"},
		{"no jwk", makeProof(t, proofSpec{noJWK: true}), vHTM, vHTU, oidc.DPoPCheck{}, "no jwk"},
		{"signed by another key than the jwk's", makeProof(t, proofSpec{jwk: otherJWK}), vHTM, vHTU, oidc.DPoPCheck{}, "does not verify"},
		{"jwk alg disagrees", makeProof(t, proofSpec{jwk: jwkJSON(t, &ecK.PublicKey, map[string]any{"alg": "ES384"})}), vHTM, vHTU, oidc.DPoPCheck{}, "jwk alg"},
		{"jwk for encryption", makeProof(t, proofSpec{jwk: jwkJSON(t, &ecK.PublicKey, map[string]any{"use": "enc"})}), vHTM, vHTU, oidc.DPoPCheck{}, "jwk use"},
		{"typ JWT", makeProof(t, proofSpec{typ: "JWT"}), vHTM, vHTU, oidc.DPoPCheck{}, "typ"},
		{"no typ", makeProof(t, proofSpec{typ: ""}), vHTM, vHTU, oidc.DPoPCheck{}, "typ"},
		{"crit header", makeProof(t, proofSpec{headers: map[jose.HeaderKey]any{"crit": []string{"exp"}, "exp": 1}}), vHTM, vHTU, oidc.DPoPCheck{}, "crit header"},
		{"claims not an object", makeProof(t, proofSpec{payload: []byte(`["jti-1"]`)}), vHTM, vHTU, oidc.DPoPCheck{}, "claims"},
		{"signature tampered", makeProof(t, proofSpec{}) + "A", vHTM, vHTU, oidc.DPoPCheck{}, "does not verify"},
		{"no jti", makeProof(t, proofSpec{claims: withClaims(func(c map[string]any) { delete(c, "jti") })}), vHTM, vHTU, oidc.DPoPCheck{}, "jti"},
		{"jti too long", makeProof(t, proofSpec{claims: withClaims(func(c map[string]any) { c["jti"] = strings.Repeat("j", 257) })}), vHTM, vHTU, oidc.DPoPCheck{}, "jti"},
		{"wrong htm", makeProof(t, proofSpec{}), "GET", vHTU, oidc.DPoPCheck{}, "htm"},
		{"htm in lower case", makeProof(t, proofSpec{claims: withClaims(func(c map[string]any) { c["htm"] = "post" })}), vHTM, vHTU, oidc.DPoPCheck{}, "htm"},
		{"htu with a query", makeProof(t, proofSpec{claims: withClaims(func(c map[string]any) { c["htu"] = vHTU + "?a=b" })}), vHTM, vHTU + "?a=b", oidc.DPoPCheck{}, "query"},
		{"htu with a fragment", makeProof(t, proofSpec{claims: withClaims(func(c map[string]any) { c["htu"] = vHTU + "#f" })}), vHTM, vHTU, oidc.DPoPCheck{}, "fragment"},
		{"htu of another path", makeProof(t, proofSpec{}), vHTM, "https://idp.example.com/par", oidc.DPoPCheck{}, "htu"},
		{"htu of another host", makeProof(t, proofSpec{}), vHTM, "https://evil.example.com/token", oidc.DPoPCheck{}, "htu"},
		{"htu over http", makeProof(t, proofSpec{}), vHTM, "http://idp.example.com/token", oidc.DPoPCheck{}, "htu"},
		{"htu not a string", makeProof(t, proofSpec{claims: withClaims(func(c map[string]any) { c["htu"] = 7 })}), vHTM, vHTU, oidc.DPoPCheck{}, "claims"},
		{"no iat", makeProof(t, proofSpec{claims: withClaims(func(c map[string]any) { delete(c, "iat") })}), vHTM, vHTU, oidc.DPoPCheck{}, "iat"},
		{"iat a string", makeProof(t, proofSpec{claims: withClaims(func(c map[string]any) { c["iat"] = "1700000000" })}), vHTM, vHTU, oidc.DPoPCheck{}, "claims"},
		{"iat too old", makeProof(t, proofSpec{claims: withClaims(func(c map[string]any) { c["iat"] = vNow.Unix() - 61 })}), vHTM, vHTU, oidc.DPoPCheck{}, "iat"},
		{"iat in the future", makeProof(t, proofSpec{claims: withClaims(func(c map[string]any) { c["iat"] = vNow.Unix() + 61 })}), vHTM, vHTU, oidc.DPoPCheck{}, "iat"},
		{"ath missing", makeProof(t, proofSpec{}), vHTM, vHTU, oidc.DPoPCheck{AccessToken: rfcAccessToken}, "ath"},
		{"ath of another token", makeProof(t, proofSpec{claims: withClaims(func(c map[string]any) { c["ath"] = athOf("other") })}), vHTM, vHTU, oidc.DPoPCheck{AccessToken: rfcAccessToken}, "ath"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := tt.check
			check.Now = vNow
			p, err := oidc.VerifyDPoPProof(tt.proof, tt.htm, tt.htu, check)
			if err == nil {
				t.Fatalf("got %+v, want an error", p)
			}
			if !errors.Is(err, oidc.ErrInvalidDPoPProof) {
				t.Errorf("got %v, want it to wrap ErrInvalidDPoPProof", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), rfcAccessToken) {
				t.Errorf("error %q quotes the access token", err)
			}
		})
	}
}

func TestVerifyDPoPProofNonce(t *testing.T) {
	for _, tt := range []struct {
		name  string
		nonce any // in the proof; nil: none
	}{
		{"missing", nil},
		{"another", "n-0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			claims := goodClaims()
			if tt.nonce != nil {
				claims["nonce"] = tt.nonce
			}
			_, err := oidc.VerifyDPoPProof(makeProof(t, proofSpec{claims: claims}), vHTM, vHTU, oidc.DPoPCheck{Now: vNow, Nonce: "n-1"})
			if !errors.Is(err, oidc.ErrUseDPoPNonce) {
				t.Errorf("got %v, want ErrUseDPoPNonce", err)
			}
		})
	}
}

// FuzzVerifyDPoPProof: the verifier never panics, and accepts nothing but
// proofs of the expected request.
func FuzzVerifyDPoPProof(f *testing.F) {
	good := makeProof(f, proofSpec{})
	f.Add(good)
	f.Add(good[:len(good)-4])
	f.Add(makeProof(f, proofSpec{claims: withClaims(func(c map[string]any) { c["htm"] = "GET" })}))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := oidc.VerifyDPoPProof(proof, vHTM, vHTU, oidc.DPoPCheck{Now: vNow})
		if err != nil {
			return
		}
		if p.Method != vHTM || p.JKT == "" || p.ID == "" {
			t.Fatalf("accepted %+v", p)
		}
	})
}
