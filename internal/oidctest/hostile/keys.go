package hostile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"
)

// Key is a signing key and its JWK key id.
type Key struct {
	ID string
	// Alg is the JWS algorithm the key signs with: RS256 or ES256.
	Alg    string
	Signer crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey
}

// NewRSAKey returns a 2048-bit RS256 key with key id id.
func NewRSAKey(t testing.TB, id string) *Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("rsa key: %v", err)
	}
	return &Key{ID: id, Alg: "RS256", Signer: k}
}

// NewECKey returns a P-256 ES256 key with key id id.
func NewECKey(t testing.TB, id string) *Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("ec key: %v", err)
	}
	return &Key{ID: id, Alg: "ES256", Signer: k}
}

// JWK is the public key as a JSON Web Key with kid, alg and use "sig".
func (k *Key) JWK() map[string]any {
	m := map[string]any{"kid": k.ID, "alg": k.Alg, "use": "sig"}
	switch pub := k.Signer.Public().(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = b64(pub.N.Bytes())
		m["e"] = b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		// Uncompressed point: 0x04 || X || Y.
		pt, err := pub.Bytes()
		if err != nil {
			panic(fmt.Sprintf("hostile: ec key: %v", err))
		}
		size := (len(pt) - 1) / 2
		m["kty"] = "EC"
		m["crv"] = pub.Curve.Params().Name
		m["x"] = b64(pt[1 : 1+size])
		m["y"] = b64(pt[1+size:])
	}
	return m
}

// PublicPEM is the public key as a PEM "PUBLIC KEY" block (PKIX), the
// bytes an HS256/RS256 confusion attack uses as the HMAC secret.
func (k *Key) PublicPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.PublicDER()})
}

// PublicDER is the public key in PKIX DER.
func (k *Key) PublicDER() []byte {
	der, err := x509.MarshalPKIXPublicKey(k.Signer.Public())
	if err != nil {
		panic(fmt.Sprintf("hostile: marshal public key: %v", err))
	}
	return der
}

// Certificate is a self-signed DER certificate for the key, for x5c headers.
func (k *Key) Certificate(t testing.TB) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "hostile " + k.ID},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Signer.Public(), k.Signer)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	return der
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
