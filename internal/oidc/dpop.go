package oidc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DPoP (RFC 9449): a key pair per session, and the proofs it signs.

// Header names and values of RFC 9449, spelled as the RFC spells them.
const (
	// HeaderDPoP carries a proof (RFC 9449 §4.1).
	HeaderDPoP = "DPoP"
	// HeaderDPoPNonce carries a server's nonce (RFC 9449 §8, §9).
	HeaderDPoPNonce = "DPoP-Nonce"
	// DPoPScheme is the Authorization scheme and token_type of a DPoP-bound
	// access token (RFC 9449 §7.1, §5).
	DPoPScheme = "DPoP"
	// ErrorUseDPoPNonce is the error code of a server that wants a nonce
	// in the proof (RFC 9449 §8, §9).
	ErrorUseDPoPNonce = "use_dpop_nonce"
	// ErrorInvalidDPoPProof is the error code for a bad proof (RFC 9449 §5, §7.1).
	ErrorInvalidDPoPProof = "invalid_dpop_proof"
	// DPoPProofType is the typ header of a proof (RFC 9449 §4.2).
	DPoPProofType = "dpop+jwt"
)

// MaxDPoPNonceBytes bounds a nonce Cloakroom puts into a proof or keeps.
const MaxDPoPNonceBytes = 1024

// dpopKeyP256 tags the binary form of a P-256 DPoP key.
const dpopKeyP256 = 0x01

// DPoPKey is a session's DPoP key: ECDSA on P-256, signing ES256 (RFC 9449
// §4.2 lets the client choose; ES256 is the one algorithm every
// DPoP-capable provider accepts, where EdDSA is not yet universal, and it
// signs far faster than RSA).
//
// It is parsed once per key: the public JWK of the proof header is encoded
// when the key is made or unmarshalled, and the go-jose signer is reused,
// so a proof costs one ECDSA signature and the encoding of its claims. A
// DPoPKey is safe for concurrent use.
type DPoPKey struct {
	priv   *ecdsa.PrivateKey
	signer jose.Signer
	jkt    string
}

// NewDPoPKey returns a new random key.
func NewDPoPKey() (*DPoPKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate DPoP key: %w", err)
	}
	return newDPoPKey(priv)
}

// UnmarshalDPoPKey parses what MarshalBinary returned.
func UnmarshalDPoPKey(b []byte) (*DPoPKey, error) {
	if len(b) != 33 || b[0] != dpopKeyP256 {
		return nil, errors.New("DPoP key: not a marshalled P-256 key")
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b[1:])
	if err != nil {
		return nil, errors.New("DPoP key: invalid P-256 private key")
	}
	return newDPoPKey(priv)
}

func newDPoPKey(priv *ecdsa.PrivateKey) (*DPoPKey, error) {
	pub := jose.JSONWebKey{Key: &priv.PublicKey}
	jwk, err := pub.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("DPoP key: encode public key: %w", err)
	}
	jkt, err := thumbprint(&pub)
	if err != nil {
		return nil, fmt.Errorf("DPoP key: %w", err)
	}
	// The jwk header goes in as JSON already encoded: go-jose copies a
	// json.RawMessage as it is, where EmbedJWK would encode the key again
	// for every proof.
	opts := (&jose.SignerOptions{}).WithType(DPoPProofType).WithHeader("jwk", json.RawMessage(jwk))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv}, opts)
	if err != nil {
		return nil, fmt.Errorf("DPoP key: %w", err)
	}
	return &DPoPKey{priv: priv, signer: signer, jkt: jkt}, nil
}

// MarshalBinary returns the private key in 33 bytes, for sealing inside a
// session: a tag byte (1: P-256) and the 32-byte big-endian private scalar
// (SEC 1 §2.3.7, crypto/ecdsa's raw form). The public key is computed
// again by UnmarshalDPoPKey. The tag keeps the form unambiguous should
// another key type come (an Ed25519 seed is 32 bytes too). The result is
// the private key: seal it, never log it.
func (k *DPoPKey) MarshalBinary() ([]byte, error) {
	d, err := k.priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("DPoP key: %w", err)
	}
	return append([]byte{dpopKeyP256}, d...), nil
}

// JKT is the key's RFC 7638 SHA-256 thumbprint, base64url: the value of a
// bound token's cnf.jkt (RFC 9449 §6) and of the dpop_jkt authorization
// request parameter (RFC 9449 §10).
func (k *DPoPKey) JKT() string { return k.jkt }

type dpopClaims struct {
	ID       string `json:"jti"`
	Method   string `json:"htm"`
	URI      string `json:"htu"`
	IssuedAt int64  `json:"iat"`
	ATH      string `json:"ath,omitempty"`
	Nonce    string `json:"nonce,omitempty"`
}

// Proof returns a DPoP proof (RFC 9449 §4.2) for a request with method htm
// to URL htu, made at now: header typ dpop+jwt, alg ES256 and the public
// jwk; claims a random jti (128 bits), htm, htu as DPoPHTU normalises it
// (no query, no fragment), iat, ath (the base64url SHA-256 of accessToken)
// when accessToken is not empty, and nonce when nonce is not empty.
// Errors never quote the URL, the token or the nonce.
func (k *DPoPKey) Proof(htm, htu, accessToken, nonce string, now time.Time) (string, error) {
	if !isToken(htm) {
		return "", errors.New("DPoP proof: htm is not an HTTP method")
	}
	u, err := DPoPHTU(htu)
	if err != nil {
		return "", fmt.Errorf("DPoP proof: %w", err)
	}
	if nonce != "" && !ValidDPoPNonce(nonce) {
		return "", errors.New("DPoP proof: the nonce is not a valid DPoP-Nonce value")
	}
	c := dpopClaims{ID: newJTI(), Method: htm, URI: u, IssuedAt: now.Unix(), Nonce: nonce}
	if accessToken != "" {
		c.ATH = accessTokenHash(accessToken)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("DPoP proof: %w", err)
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("DPoP proof: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// accessTokenHash is a proof's ath (RFC 9449 §4.2): the base64url SHA-256
// of the token's ASCII bytes.
func accessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// DPoPHTU is the htu of a proof for a request to rawURL (RFC 9449 §4.2):
// the URL without query and fragment. It is normalised as browsers'
// (WHATWG) URL parser does, which is what panva's oidc-provider and
// oauth4webapi compare (RFC 9449 §4.3 asks servers for RFC 3986
// syntax-based and scheme-based normalisation): scheme and host in lower
// case, the scheme's default port dropped, an empty path written "/". The
// path is kept as escaped on the wire: dot segments and percent-encodings
// are left alone, since they are what the server receives. Only http and
// https URLs with a host are accepted, and no user information (it would
// end up in the proof). Errors do not quote rawURL.
func DPoPHTU(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", errors.New("htu is not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("htu is not an http or https URL")
	}
	if u.Host == "" || u.Opaque != "" {
		return "", errors.New("htu has no host")
	}
	if u.User != nil {
		return "", errors.New("htu carries user information")
	}
	host := strings.ToLower(u.Host)
	host = strings.TrimSuffix(host, ":")
	if scheme == "https" {
		host = strings.TrimSuffix(host, ":443")
	} else {
		host = strings.TrimSuffix(host, ":80")
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// isToken reports whether s is an RFC 9110 token (an HTTP method is one).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
