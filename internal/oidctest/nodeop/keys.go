package nodeop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// Key is a client signing key (private_key_jwt, DPoP): RSA 2048 for PS256
// or P-256 for ES256. Its key ID is the RFC 7638 thumbprint of the public
// key.
type Key struct {
	Signer crypto.Signer
	Alg    jose.SignatureAlgorithm
	KeyID  string
}

// NewRSAKey makes an RSA 2048 key that signs PS256.
func NewRSAKey(t testing.TB) *Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return newKey(t, k, jose.PS256)
}

// NewECKey makes a P-256 key that signs ES256.
func NewECKey(t testing.TB) *Key {
	t.Helper()
	return newKey(t, newECKey(t), jose.ES256)
}

func newKey(t testing.TB, s crypto.Signer, alg jose.SignatureAlgorithm) *Key {
	t.Helper()
	pub := jose.JSONWebKey{Key: s.Public()}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return &Key{Signer: s, Alg: alg, KeyID: b64(tp)}
}

// JWK is the private key as a JWK with kid, alg and use "sig".
func (k *Key) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Signer, KeyID: k.KeyID, Algorithm: string(k.Alg), Use: "sig"}
}

// PublicJWK is the public half of [Key.JWK].
func (k *Key) PublicJWK() jose.JSONWebKey {
	jwk := k.JWK()
	return jwk.Public()
}

// Thumbprint is the base64url RFC 7638 SHA-256 thumbprint of the public
// key: the "cnf.jkt" of a DPoP-bound token when this key signs the proofs
// (RFC 9449 section 6.1).
func (k *Key) Thumbprint() string { return k.KeyID }

// PublicJWKS is the JWKS of the keys' public halves, for a client's jwks
// registration or a jwks_uri document.
func PublicJWKS(keys ...*Key) *jose.JSONWebKeySet {
	set := &jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.PublicJWK())
	}
	return set
}

// WritePEM writes the private key as PKCS#8 PEM into a test temporary
// directory and returns the file's path.
func (k *Key) WritePEM(t testing.TB) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k.Signer)
	if err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return writePEM(t, filepath.Join(t.TempDir(), "key.pem"), "PRIVATE KEY", der)
}

// WriteJWK writes the private key as one JWK and returns the file's path.
func (k *Key) WriteJWK(t testing.TB) string {
	t.Helper()
	return writeJSON(t, "key.jwk", k.JWK())
}

// WriteJWKS writes the private keys as a JWKS, in order, and returns the
// file's path.
func WriteJWKS(t testing.TB, keys ...*Key) string {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.JWK())
	}
	return writeJSON(t, "keys.jwks", set)
}

func writeJSON(t testing.TB, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return path
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return k
}

func writePEM(t testing.TB, path, blockType string, der []byte) string {
	t.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return path
}
