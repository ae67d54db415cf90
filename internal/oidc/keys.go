package oidc

import (
	"bytes"
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
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/go-jose/go-jose/v4"
)

// MaxKeyFileBytes bounds the size of a signing key file.
const MaxKeyFileBytes = 1 << 20

// SigningKeys are the client's own signing keys (oidc.private_key_file):
// the first signs, all are published by PublicJWKS (key rotation). They are
// parsed once, by LoadSigningKeys or ParseSigningKeys, and safe for
// concurrent use.
//
// Accepted keys: RSA of at least 2048 bits, which sign with PS256, and EC
// on P-256, which sign with ES256. A JWK's own alg, when set, must be that
// algorithm; its use, when set, must be "sig". The key id is the JWK's own
// kid, else the key's RFC 7638 SHA-256 thumbprint (base64url), which is
// also what a PEM key gets.
//
// No error about a key file ever quotes the file's contents: errors name
// the file and what is wrong with it, and the parsers' own messages are
// not passed on.
type SigningKeys struct {
	kid       string
	alg       jose.SignatureAlgorithm
	assertion jose.Signer     // typ JWT, kid; see ClientAssertions
	key       jose.JSONWebKey // the signing key, for signers with other headers
	jwks      []byte
}

// KeyID is the kid of the signing key.
func (k *SigningKeys) KeyID() string { return k.kid }

// Algorithm is the signing key's JWS algorithm: PS256 or ES256.
func (k *SigningKeys) Algorithm() string { return string(k.alg) }

// PublicJWKS is the JSON Web Key Set (RFC 7517 §5) of the public halves of
// all the keys, each with use "sig", its alg and its kid: what GET
// /bff/jwks serves. It never holds a private member. The caller owns the
// returned slice.
func (k *SigningKeys) PublicJWKS() []byte { return bytes.Clone(k.jwks) }

// LoadSigningKeys reads and parses the key file at path; see
// ParseSigningKeys for what it may hold.
func LoadSigningKeys(path string) (*SigningKeys, error) {
	f, err := os.Open(path)
	if err != nil {
		// The *PathError names the file and the reason, nothing of its contents.
		return nil, fmt.Errorf("private key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("private key file %q: %w", path, err)
	}
	if len(data) > MaxKeyFileBytes {
		return nil, fmt.Errorf("private key file %q: larger than %d bytes", path, MaxKeyFileBytes)
	}
	return ParseSigningKeys(path, data)
}

// ParseSigningKeys parses a key file's contents; name is the file's name,
// for errors. The file holds either
//
//   - one PEM private key: PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE
//     KEY") or SEC 1 ("EC PRIVATE KEY", which may follow the "EC
//     PARAMETERS" block openssl writes). Text around the block is ignored;
//     a second key, or a block of another type, is an error: several keys
//     belong in a JWKS file, which can say which one signs. Encrypted PEM
//     is not supported.
//   - one JWK (RFC 7517 §4) with its private members, or
//   - a JWKS (RFC 7517 §5): the first key must be private and signs; the
//     others may be private or public-only and are published alongside
//     (a key being introduced, or one being retired). Key ids must differ.
func ParseSigningKeys(name string, data []byte) (*SigningKeys, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("private key file %q: %s", name, fmt.Sprintf(format, a...))
	}
	var keys []jose.JSONWebKey
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return nil, fail("is empty")
	case trimmed[0] == '{':
		var err error
		if keys, err = parseJWKFile(trimmed); err != nil {
			return nil, fail("%v", err)
		}
	default:
		key, err := parsePEMKey(data)
		if err != nil {
			return nil, fail("%v", err)
		}
		keys = []jose.JSONWebKey{{Key: key}}
	}
	seen := make(map[string]int, len(keys))
	for i := range keys {
		if err := checkSigningKey(&keys[i], i == 0); err != nil {
			return nil, fail("%s%v", keyPrefix(i, len(keys)), err)
		}
		if j, dup := seen[keys[i].KeyID]; dup {
			return nil, fail("keys %d and %d have the same kid %q", j+1, i+1, keys[i].KeyID)
		}
		seen[keys[i].KeyID] = i
	}

	first := keys[0]
	if err := selfTest(first); err != nil {
		return nil, fail("%s%v", keyPrefix(0, len(keys)), err)
	}
	assertion, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(first.Algorithm), Key: &first},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fail("%scannot sign: %v", keyPrefix(0, len(keys)), err)
	}
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, len(keys))}
	for i, key := range keys {
		set.Keys[i] = key.Public()
		if !set.Keys[i].Valid() || !set.Keys[i].IsPublic() {
			return nil, fail("key %d has no public half", i+1)
		}
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fail("encode public keys: %v", err)
	}
	return &SigningKeys{
		kid:       first.KeyID,
		alg:       jose.SignatureAlgorithm(first.Algorithm),
		assertion: assertion,
		key:       first,
		jwks:      jwks,
	}, nil
}

// keyPrefix names key i of n in an error, when there are several.
func keyPrefix(i, n int) string {
	if n == 1 {
		return ""
	}
	return fmt.Sprintf("key %d: ", i+1)
}

// parseJWKFile parses a JWK or a JWKS with private members allowed. Errors
// are its own: go-jose's and encoding/json's may quote the input.
func parseJWKFile(data []byte) ([]jose.JSONWebKey, error) {
	var probe struct {
		Keys json.RawMessage `json:"keys"`
		Kty  json.RawMessage `json:"kty"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, errors.New("is not valid JSON")
	}
	if probe.Keys == nil {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(data); err != nil {
			return nil, errors.New("is not a valid JWK (RFC 7517: kty and the key's members)")
		}
		return []jose.JSONWebKey{key}, nil
	}
	if probe.Kty != nil {
		return nil, errors.New("has both keys and kty: a JWK or a JWKS, not both")
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, errors.New("keys is not an array of JWKs")
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("holds an empty JWKS")
	}
	keys := make([]jose.JSONWebKey, len(set.Keys))
	for i, raw := range set.Keys {
		if err := keys[i].UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("key %d is not a valid JWK (RFC 7517: kty and the key's members)", i+1)
		}
	}
	return keys, nil
}

// parsePEMKey parses the one private key of a PEM file. Errors are its own:
// x509's and asn1's are not quoted.
func parsePEMKey(data []byte) (any, error) {
	var key any
	found := false
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "EC PARAMETERS" {
			continue
		}
		if found {
			return nil, errors.New("holds more than one PEM block; a PEM file holds one key (use a JWKS file for several)")
		}
		found = true
		if _, encrypted := b.Headers["Proc-Type"]; encrypted || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("holds an encrypted private key; decrypt it (openssl pkey) and protect the file instead")
		}
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			return nil, fmt.Errorf("holds a PEM block of type %q; want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %q is not a valid key of that type", b.Type)
		}
	}
	if !found {
		return nil, errors.New("is neither PEM nor JSON (a JWK or a JWKS)")
	}
	return key, nil
}

// checkSigningKey refuses keys that may not sign client assertions and
// fills in alg, use and kid.
func checkSigningKey(key *jose.JSONWebKey, mustBePrivate bool) error {
	var alg jose.SignatureAlgorithm
	switch k := key.Key.(type) {
	case *rsa.PrivateKey:
		if err := checkRSA(&k.PublicKey); err != nil {
			return err
		}
		if err := k.Validate(); err != nil {
			return errors.New("RSA private key is inconsistent")
		}
		alg = jose.PS256
	case *rsa.PublicKey:
		if err := checkRSA(k); err != nil {
			return err
		}
		alg = jose.PS256
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("EC key on %s; only P-256 is accepted", k.Curve.Params().Name)
		}
		alg = jose.ES256
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("EC key on %s; only P-256 is accepted", k.Curve.Params().Name)
		}
		alg = jose.ES256
	case []byte:
		return errors.New("is a symmetric (oct) key; want an RSA or EC P-256 private key")
	case nil:
		return errors.New("holds no key")
	default:
		return fmt.Errorf("is an %s key; want RSA (2048 bits or more) or EC P-256", keyKind(key.Key))
	}
	if mustBePrivate && key.IsPublic() {
		return errors.New("is a public key; the signing key must hold its private members")
	}
	if key.Algorithm != "" && key.Algorithm != string(alg) {
		return fmt.Errorf("has alg %q; this key type signs with %s", key.Algorithm, alg)
	}
	if key.Use != "" && key.Use != "sig" {
		return fmt.Errorf("has use %q; want sig", key.Use)
	}
	key.Algorithm, key.Use = string(alg), "sig"
	if key.KeyID == "" {
		kid, err := thumbprint(key)
		if err != nil {
			return err
		}
		key.KeyID = kid
	}
	return nil
}

func checkRSA(k *rsa.PublicKey) error {
	if k.N == nil || k.N.BitLen() < minRSABits {
		bits := 0
		if k.N != nil {
			bits = k.N.BitLen()
		}
		return fmt.Errorf("RSA key has %d bits; at least %d are needed", bits, minRSABits)
	}
	return nil
}

// keyKind names a key's type for an error, never its value.
func keyKind(k any) string {
	switch k.(type) {
	case ed25519.PrivateKey, ed25519.PublicKey:
		return "Ed25519"
	default:
		// Anything else x509 or go-jose may parse (X25519, ML-DSA, ...).
		return fmt.Sprintf("%T", k)
	}
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of key's public half,
// base64url without padding.
func thumbprint(key *jose.JSONWebKey) (string, error) {
	sum, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", errors.New("cannot compute the key's thumbprint")
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// selfTest signs and verifies once, so a private key whose members do not
// match (a JWK with another key's x and y, say) fails at start-up rather
// than at the provider.
func selfTest(key jose.JSONWebKey) error {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key.Key}, nil)
	if err != nil {
		return errors.New("cannot sign with this key")
	}
	msg := make([]byte, 16)
	_, _ = rand.Read(msg)
	jws, err := s.Sign(msg)
	if err != nil {
		return errors.New("cannot sign with this key")
	}
	pub := key.Public()
	if _, err := jws.Verify(pub.Key); err != nil {
		return errors.New("the private key does not match its public members")
	}
	return nil
}
