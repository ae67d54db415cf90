package oidc_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/go-jose/go-jose/v4"
)

// Keys are generated once per test binary: RSA generation is slow under
// the race detector.
var (
	rsaKey2048 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsaKey1024 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(1024) })
	ecKey256   = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
	ecKey384   = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P384()) })
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func pemOf(t testing.TB, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PRIVATE KEY", der)
}

func sec1(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "EC PRIVATE KEY", der)
}

// jwkJSON encodes key as a JWK with the given extra members.
func jwkJSON(t testing.TB, key any, extra map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if len(extra) == 0 {
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func jwks(keys ...[]byte) []byte {
	return []byte(`{"keys":[` + string(joinBytes(keys)) + `]}`)
}

func joinBytes(parts [][]byte) []byte {
	var out []byte
	for i, p := range parts {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, p...)
	}
	return out
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func thumb(t testing.TB, key any) string {
	t.Helper()
	jwk := jose.JSONWebKey{Key: key}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// secretsOf returns strings of key's private material as a key file may
// spell them, none of which an error may quote.
func secretsOf(t testing.TB, data []byte) []string {
	t.Helper()
	var out []string
	if b, _ := pem.Decode(data); b != nil {
		body := base64.StdEncoding.EncodeToString(b.Bytes)
		for i := 0; i+24 <= len(body); i += 24 {
			out = append(out, body[i:i+24])
		}
		return out
	}
	var m map[string]any
	if json.Unmarshal(data, &m) == nil {
		for _, k := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if s, ok := m[k].(string); ok && len(s) >= 8 {
				out = append(out, s[:8])
			}
		}
	}
	return out
}

func TestLoadSigningKeys(t *testing.T) {
	rsaK, ecK := rsaKey2048(), ecKey256()
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	tests := []struct {
		name    string
		data    []byte
		wantAlg string
		wantKid string
		wantN   int // keys published
	}{
		{"PKCS#8 RSA", pkcs8(t, rsaK), "PS256", thumb(t, rsaK), 1},
		{"PKCS#1 RSA", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaK)), "PS256", thumb(t, rsaK), 1},
		{"PKCS#8 EC", pkcs8(t, ecK), "ES256", thumb(t, ecK), 1},
		{"SEC1 EC", sec1(t, ecK), "ES256", thumb(t, ecK), 1},
		{"SEC1 EC after EC PARAMETERS, with text around", append(append([]byte("Bag Attributes\n"), ecParams...), sec1(t, ecK)...), "ES256", thumb(t, ecK), 1},
		{"JWK EC without kid", jwkJSON(t, ecK, nil), "ES256", thumb(t, ecK), 1},
		{"JWK EC with kid, alg and use", jwkJSON(t, ecK, map[string]any{"kid": "ec-1", "alg": "ES256", "use": "sig"}), "ES256", "ec-1", 1},
		{"JWK RSA with kid", jwkJSON(t, rsaK, map[string]any{"kid": "rsa-1", "alg": "PS256"}), "PS256", "rsa-1", 1},
		{"JWKS: the first signs", jwks(jwkJSON(t, ecK, map[string]any{"kid": "new"}), jwkJSON(t, rsaK, map[string]any{"kid": "old"})), "ES256", "new", 2},
		{"JWKS with a public-only second key", jwks(jwkJSON(t, rsaK, nil), jwkJSON(t, &ecK.PublicKey, nil)), "PS256", thumb(t, rsaK), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := oidc.LoadSigningKeys(writeFile(t, "client.key", tt.data))
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if got := keys.Algorithm(); got != tt.wantAlg {
				t.Errorf("alg: got %q, want %q", got, tt.wantAlg)
			}
			if got := keys.KeyID(); got != tt.wantKid {
				t.Errorf("kid: got %q, want %q", got, tt.wantKid)
			}
			set := publicSet(t, keys)
			if len(set.Keys) != tt.wantN {
				t.Fatalf("published keys: got %d, want %d", len(set.Keys), tt.wantN)
			}
			if set.Keys[0].KeyID != tt.wantKid || set.Keys[0].Algorithm != tt.wantAlg {
				t.Errorf("first published key: got kid %q alg %q, want %q %q", set.Keys[0].KeyID, set.Keys[0].Algorithm, tt.wantKid, tt.wantAlg)
			}
		})
	}
}

// publicSet parses PublicJWKS and checks that no key has a private member
// and each has use sig, an alg and a kid.
func publicSet(t *testing.T, keys *oidc.SigningKeys) jose.JSONWebKeySet {
	t.Helper()
	raw := keys.PublicJWKS()
	var generic struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatalf("PublicJWKS is not JSON: %v", err)
	}
	for i, k := range generic.Keys {
		for _, member := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth", "priv"} {
			if _, ok := k[member]; ok {
				t.Errorf("key %d: private member %q published", i, member)
			}
		}
		if k["use"] != "sig" || k["alg"] == nil || k["kid"] == nil {
			t.Errorf("key %d: got use %v alg %v kid %v, want use sig, an alg and a kid", i, k["use"], k["alg"], k["kid"])
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("PublicJWKS is not a JWKS: %v", err)
	}
	for i, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("key %d is not public", i)
		}
	}
	return set
}

func TestPublicJWKSIsACopy(t *testing.T) {
	keys, err := oidc.ParseSigningKeys("k", pkcs8(t, ecKey256()))
	if err != nil {
		t.Fatal(err)
	}
	b := keys.PublicJWKS()
	b[0] = 'X'
	if got := keys.PublicJWKS()[0]; got != '{' {
		t.Errorf("got first byte %q after the caller changed its copy, want '{'", got)
	}
}

func TestLoadSigningKeysRefuses(t *testing.T) {
	rsaK, ecK := rsaKey2048(), ecKey256()
	_, edK, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other := mustEC(elliptic.P256())
	mismatched := jwkJSON(t, ecK, map[string]any{
		"x": base64.RawURLEncoding.EncodeToString(other.PublicKey.X.FillBytes(make([]byte, 32))),
		"y": base64.RawURLEncoding.EncodeToString(other.PublicKey.Y.FillBytes(make([]byte, 32))),
	})
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte("SECRETCANARY0123456789")})
	certLike := pemOf(t, "CERTIFICATE", []byte("SECRETCANARY0123456789"))
	garbagePEM := pemOf(t, "PRIVATE KEY", []byte("SECRETCANARY0123456789"))
	tests := []struct {
		name string
		data []byte
		want string // in the error
	}{
		{"empty", []byte("  \n"), "is empty"},
		{"garbage", []byte("SECRETCANARY not a key at all"), "neither PEM nor JSON"},
		{"bad JSON", []byte(`{"kty":"EC","d":"SECRETCANARY`), "not valid JSON"},
		{"garbage in a PEM block", garbagePEM, `PEM block "PRIVATE KEY" is not a valid key`},
		{"RSA 1024", pkcs8(t, rsaKey1024()), "1024 bits; at least 2048"},
		{"RSA 1024 JWK", jwkJSON(t, rsaKey1024(), nil), "1024 bits; at least 2048"},
		{"EC P-384", sec1(t, ecKey384()), "P-384; only P-256"},
		{"EC P-384 JWK", jwkJSON(t, ecKey384(), nil), "P-384; only P-256"},
		{"Ed25519 PEM", pkcs8(t, edK), "is an Ed25519 key"},
		{"Ed25519 JWK", jwkJSON(t, edK, nil), "is an Ed25519 key"},
		{"HMAC JWK", []byte(`{"kty":"oct","k":"U0VDUkVUQ0FOQVJZMDEyMzQ1Njc4OTAxMjM0NTY3ODkw","alg":"HS256"}`), "symmetric (oct) key"},
		{"public-only JWK", jwkJSON(t, &ecK.PublicKey, nil), "is a public key"},
		{"JWKS whose first key is public", jwks(jwkJSON(t, &ecK.PublicKey, nil), jwkJSON(t, rsaK, nil)), "key 1: is a public key"},
		{"public PEM", pemOf(t, "PUBLIC KEY", mustMarshalPKIX(t, &ecK.PublicKey)), `PEM block of type "PUBLIC KEY"`},
		{"RSA JWK with alg RS256", jwkJSON(t, rsaK, map[string]any{"alg": "RS256"}), `alg "RS256"; this key type signs with PS256`},
		{"EC JWK with alg ES384", jwkJSON(t, ecK, map[string]any{"alg": "ES384"}), `alg "ES384"`},
		{"JWK for encryption", jwkJSON(t, ecK, map[string]any{"use": "enc"}), `use "enc"`},
		{"JWK without kty", jwkJSON(t, ecK, map[string]any{"kty": nil}), "not a valid JWK"},
		{"JWK with another key's x and y", mismatched, "private key does not match its public members"},
		{"empty JWKS", []byte(`{"keys":[]}`), "empty JWKS"},
		{"JWKS with a bad key", jwks(jwkJSON(t, ecK, nil), []byte(`{"kty":"RSA","n":"SECRETCANARY"}`)), "key 2 is not a valid JWK"},
		{"JWKS with a weak second key", jwks(jwkJSON(t, ecK, nil), jwkJSON(t, rsaKey1024(), nil)), "key 2: RSA key has 1024 bits"},
		{"JWKS with a duplicate kid", jwks(jwkJSON(t, ecK, map[string]any{"kid": "a"}), jwkJSON(t, rsaK, map[string]any{"kid": "a"})), `keys 1 and 2 have the same kid "a"`},
		{"JWK and JWKS at once", []byte(`{"kty":"EC","keys":[]}`), "not both"},
		{"two PEM keys", append(pkcs8(t, ecK), pkcs8(t, rsaK)...), "more than one PEM block"},
		{"a key and a certificate", append(pkcs8(t, ecK), certLike...), "more than one PEM block"},
		{"encrypted PEM", encrypted, "encrypted private key"},
		{"PKCS#8 encrypted", pemOf(t, "ENCRYPTED PRIVATE KEY", []byte("SECRETCANARY0123456789")), "encrypted private key"},
		{"a certificate", certLike, `PEM block of type "CERTIFICATE"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "client.key", tt.data)
			_, err := oidc.LoadSigningKeys(path)
			if err == nil {
				t.Fatalf("got no error, want one saying %q", tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("got %q, want it to say %q", msg, tt.want)
			}
			if !strings.Contains(msg, path) {
				t.Errorf("got %q, want it to name the file %q", msg, path)
			}
			for _, s := range append(secretsOf(t, tt.data), "SECRETCANARY") {
				if strings.Contains(msg, s) {
					t.Errorf("error %q quotes key material %q", msg, s)
				}
			}
		})
	}
}

func mustMarshalPKIX(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestLoadSigningKeysFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.key")
	if _, err := oidc.LoadSigningKeys(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: got %v, want an error naming %q", err, missing)
	}
	big := writeFile(t, "big.key", make([]byte, oidc.MaxKeyFileBytes+1))
	if _, err := oidc.LoadSigningKeys(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: got %v, want an error saying it is too large", err)
	}
}

// The RFC 7638 §3.1 example key, published without a kid, gets the
// thumbprint the RFC computes as its kid.
func TestKeyThumbprintRFC7638(t *testing.T) {
	const (
		n    = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
		want = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	)
	rfcKey := []byte(`{"kty":"RSA","n":"` + n + `","e":"AQAB"}`)
	keys, err := oidc.ParseSigningKeys("rfc7638.jwks", jwks(jwkJSON(t, ecKey256(), nil), rfcKey))
	if err != nil {
		t.Fatal(err)
	}
	set := publicSet(t, keys)
	if got := set.Keys[1].KeyID; got != want {
		t.Errorf("got kid %q, want the RFC's thumbprint %q", got, want)
	}
}

// FuzzParseSigningKeys: the parser never panics, and what it accepts is a
// key that can sign and whose public set is public.
func FuzzParseSigningKeys(f *testing.F) {
	f.Add(pkcs8(f, ecKey256()))
	f.Add(sec1(f, ecKey256()))
	f.Add(jwkJSON(f, ecKey256(), map[string]any{"kid": "a"}))
	f.Add(jwks(jwkJSON(f, ecKey256(), nil), []byte(`{"kty":"oct","k":"AAAA"}`)))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := oidc.ParseSigningKeys("fuzz.key", data)
		if err != nil {
			return
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(keys.PublicJWKS(), &set); err != nil || len(set.Keys) == 0 {
			t.Fatalf("accepted keys publish no JWKS: %v", err)
		}
		for _, k := range set.Keys {
			if !k.IsPublic() {
				t.Fatal("published a non-public key")
			}
		}
	})
}
