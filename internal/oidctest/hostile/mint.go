package hostile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

// Token describes a JWS for Mint to build. The zero value is an RS256 token
// signed with the provider's RSA key, with no claims.
type Token struct {
	// Alg is how the token is signed:
	//   "RS256", "ES256": with Key, or the provider's RSA or EC key;
	//   "none": no signature (an empty third part);
	//   "HS256": HMAC-SHA256 keyed with HMACKey, by default the PEM of the
	//   provider's RSA public key (the RS256/HS256 confusion attack).
	// Default "RS256".
	Alg string
	// Key signs RS256/ES256 tokens instead of the provider's own key, for
	// instance the attacker's. Its ID is the default kid.
	Key *Key
	// HMACKey is the HS256 secret.
	HMACKey []byte
	// Header is laid over the default header {"alg": Alg, "kid": the key's
	// id, "typ": "JWT"}; a nil value removes a member. Use it for a wrong
	// or unknown kid, a lying alg, or embedded keys (jwk, jku, x5u, x5c).
	Header map[string]any
	// Claims is the payload.
	Claims map[string]any
	// BadSignature flips a bit of the signature after signing.
	BadSignature bool
}

// Mint builds the compact JWS tok describes.
func (p *Provider) Mint(t testing.TB, tok Token) string {
	t.Helper()
	s, err := p.mint(tok)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return s
}

func (p *Provider) mint(tok Token) (string, error) {
	alg := tok.Alg
	if alg == "" {
		alg = "RS256"
	}
	key := tok.Key
	if key == nil {
		key = p.RSA
		if alg == "ES256" {
			key = p.EC
		}
	}
	header := map[string]any{"alg": alg, "kid": key.ID, "typ": "JWT"}
	for k, v := range tok.Header {
		if v == nil {
			delete(header, k)
		} else {
			header[k] = v
		}
	}
	claims := tok.Claims
	if claims == nil {
		claims = map[string]any{}
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("header: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("claims: %w", err)
	}
	input := b64(h) + "." + b64(c)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch alg {
	case "none":
	case "HS256":
		secret := tok.HMACKey
		if secret == nil {
			secret = p.RSA.PublicPEM()
		}
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case "RS256":
		k, ok := key.Signer.(*rsa.PrivateKey)
		if !ok {
			return "", errors.New("RS256 needs an RSA key")
		}
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
		if err != nil {
			return "", err
		}
	case "ES256":
		k, ok := key.Signer.(*ecdsa.PrivateKey)
		if !ok {
			return "", errors.New("ES256 needs an EC key")
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			return "", err
		}
		// JWS wants r || s, each 32 bytes, not ASN.1.
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	default:
		return "", fmt.Errorf("alg %q: mint signs RS256, ES256, HS256 or none", alg)
	}
	if tok.BadSignature {
		if len(sig) == 0 {
			sig = []byte{0}
		}
		sig[len(sig)/2] ^= 0x01
	}
	return input + "." + b64(sig), nil
}
