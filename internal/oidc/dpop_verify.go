package oidc

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Checking DPoP proofs (RFC 9449 §4.3): for tests, and for POST /bff/token,
// which takes a proof made by the SPA's own key.

// ErrInvalidDPoPProof marks a proof that failed a check (RFC 9449 §4.3): the
// answer is invalid_dpop_proof. Errors of VerifyDPoPProof wrap it or
// ErrUseDPoPNonce.
var ErrInvalidDPoPProof = errors.New("invalid DPoP proof")

// ErrUseDPoPNonce marks a proof that is good but for its nonce, which is
// missing or not the one the server wants: the answer is use_dpop_nonce
// with a DPoP-Nonce header (RFC 9449 §8, §9).
var ErrUseDPoPNonce = errors.New("DPoP proof lacks the current nonce")

// DPoPAlgorithms are the proof signature algorithms VerifyDPoPProof accepts
// at most: ES256 (WebCrypto's ECDSA P-256, the most common), PS256
// and RS256 (WebCrypto's RSA-PSS and RSASSA-PKCS1-v1_5, 2048 bits or more),
// EdDSA (Ed25519, which WebCrypto now offers too). Never none, never HMAC, nothing
// a browser cannot make with a non-extractable key. The FAPI 2.0 profile
// narrows this with DPoPCheck.Algorithms (no RS256).
var DPoPAlgorithms = []string{"ES256", "PS256", "RS256", "EdDSA"}

// MaxDPoPProofBytes bounds the proofs VerifyDPoPProof parses: a proof with
// a 4096-bit RSA key is about 1.5 KB.
const MaxDPoPProofBytes = 8 << 10

// maxJTIBytes bounds a proof's jti, which the caller keeps to detect replay.
const maxJTIBytes = 256

// DefaultDPoPWindow is DPoPCheck.Window's default.
const DefaultDPoPWindow = 60 * time.Second

// DPoPCheck is what VerifyDPoPProof checks beyond the proof itself.
type DPoPCheck struct {
	// Now is the time iat is checked against; default time.Now().
	Now time.Time
	// Window is how far iat may lie from Now, either way; default
	// DefaultDPoPWindow. A server that issues nonces may widen it.
	Window time.Duration
	// Nonce, when set, is the nonce the proof must carry; a missing or
	// different one is ErrUseDPoPNonce. When empty, any nonce is ignored.
	Nonce string
	// AccessToken, when set, is the token presented with the proof: ath
	// must be its hash (RFC 9449 §4.3 check 11). When empty, ath is not
	// looked at (a proof for a token request has none).
	AccessToken string
	// Algorithms narrows DPoPAlgorithms; algorithms not in DPoPAlgorithms
	// are ignored. Default: all of DPoPAlgorithms.
	Algorithms []string
}

// DPoPProof is what a verified proof says.
type DPoPProof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint (base64url) of the proof's
	// key: compare it with the token's cnf.jkt, or bind the token to it.
	JKT       string
	Algorithm string
	ID        string // jti
	Method    string // htm
	URI       string // htu, as the proof wrote it
	IssuedAt  time.Time
	Nonce     string // "" when the proof has none
}

// VerifyDPoPProof checks a DPoP proof (RFC 9449 §4.3) sent with a request
// with method htm to URL htu (its query and fragment are ignored):
//
//   - one compact JWS of at most MaxDPoPProofBytes, signed with an
//     allowed algorithm (never none), no crit or b64 header;
//   - typ dpop+jwt (or application/dpop+jwt, RFC 7515 §4.1.9,
//     case-insensitive);
//   - a jwk header holding a public key only (go-jose refuses private
//     members: d, p, q, dp, dq, qi, k), of the algorithm's type (RSA of
//     2048 bits or more, EC P-256, Ed25519), whose own alg and use, if
//     set, agree; the signature verifies with it;
//   - claims: a non-empty jti of at most 256 bytes, htm equal to htm
//     (case-sensitive, as methods are), htu without query or fragment and
//     equal to htu once both are normalised (DPoPHTU, then percent-
//     encodings: hex digits in upper case, unreserved characters decoded),
//     iat within Window of Now, ath and nonce as check asks.
//
// The key in the proof's own header is, by design, the one that verifies
// it: a proof shows possession of a key, not who holds it. What the result
// may be trusted for is set by what the caller compares JKT with: the
// cnf.jkt of the access token presented (a resource server), or the key the
// token it is about to issue or obtain will be bound to (an authorization
// server; POST /bff/token). Any other use of a header key (ID tokens,
// logout tokens) would be a forgery hole, and Cloakroom makes none.
//
// Replay is the caller's to detect: it must remember (JKT, ID) for Window
// on either side of IssuedAt and refuse a proof seen before (RFC 9449 §11.1).
func VerifyDPoPProof(proof, htm, htu string, check DPoPCheck) (*DPoPProof, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidDPoPProof, fmt.Sprintf(format, a...))
	}
	if proof == "" {
		return nil, fail("no proof")
	}
	if len(proof) > MaxDPoPProofBytes {
		return nil, fail("longer than %d bytes", MaxDPoPProofBytes)
	}
	algs := dpopAlgorithms(check.Algorithms)
	jws, err := jose.ParseSignedCompact(proof, algs)
	if err != nil {
		return nil, fail("malformed or disallowed: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fail("not exactly one signature")
	}
	h := jws.Signatures[0].Protected
	for _, name := range []jose.HeaderKey{"crit", "b64"} {
		if _, ok := h.ExtraHeaders[name]; ok {
			return nil, fail("%s header not accepted", name)
		}
	}
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if t := strings.ToLower(typ); t != DPoPProofType && t != "application/"+DPoPProofType {
		return nil, fail("typ is %q, want %q", typ, DPoPProofType)
	}
	jwk := h.JSONWebKey
	if jwk == nil {
		return nil, fail("no jwk header")
	}
	if !jwk.IsPublic() || !jwk.Valid() {
		return nil, fail("jwk header is not a public key")
	}
	if err := checkProofKey(jwk, h.Algorithm); err != nil {
		return nil, fail("%v", err)
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return nil, fail("signature does not verify with the jwk header")
	}

	var c struct {
		ID       string   `json:"jti"`
		Method   string   `json:"htm"`
		URI      string   `json:"htu"`
		IssuedAt *float64 `json:"iat"`
		ATH      *string  `json:"ath"`
		Nonce    *string  `json:"nonce"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fail("claims are not a JSON object of the right types")
	}
	if c.ID == "" || len(c.ID) > maxJTIBytes {
		return nil, fail("jti missing or longer than %d bytes", maxJTIBytes)
	}
	if c.Method != htm {
		return nil, fail("htm is %q, want %q", c.Method, htm)
	}
	if strings.ContainsAny(c.URI, "?#") {
		return nil, fail("htu has a query or fragment")
	}
	want, err := DPoPHTU(htu)
	if err != nil {
		return nil, fmt.Errorf("DPoP proof check: %w", err)
	}
	got, err := DPoPHTU(c.URI)
	if err != nil || normalizePercent(got) != normalizePercent(want) {
		return nil, fail("htu does not match the request URL")
	}
	if c.IssuedAt == nil || *c.IssuedAt <= 0 || *c.IssuedAt > math.MaxInt32*4 {
		return nil, fail("iat missing or out of range")
	}
	issued := time.Unix(int64(*c.IssuedAt), 0)
	now, window := check.Now, check.Window
	if now.IsZero() {
		now = time.Now()
	}
	if window <= 0 {
		window = DefaultDPoPWindow
	}
	if d := now.Sub(issued); d > window || d < -window {
		return nil, fail("iat is more than %s away from now", window)
	}
	if check.AccessToken != "" && (c.ATH == nil || *c.ATH != accessTokenHash(check.AccessToken)) {
		return nil, fail("ath does not match the access token")
	}
	p := &DPoPProof{Algorithm: h.Algorithm, ID: c.ID, Method: c.Method, URI: c.URI, IssuedAt: issued}
	if c.Nonce != nil {
		p.Nonce = *c.Nonce
	}
	if check.Nonce != "" && p.Nonce != check.Nonce {
		return nil, ErrUseDPoPNonce
	}
	if p.JKT, err = thumbprint(jwk); err != nil {
		return nil, fail("%v", err)
	}
	return p, nil
}

func dpopAlgorithms(narrow []string) []jose.SignatureAlgorithm {
	var out []jose.SignatureAlgorithm
	for _, a := range DPoPAlgorithms {
		if narrow == nil || slices.Contains(narrow, a) {
			out = append(out, jose.SignatureAlgorithm(a))
		}
	}
	return out
}

// checkProofKey checks that a proof's public key suits its algorithm.
func checkProofKey(jwk *jose.JSONWebKey, alg string) error {
	if jwk.Algorithm != "" && jwk.Algorithm != alg {
		return fmt.Errorf("jwk alg %q is not the header's %q", jwk.Algorithm, alg)
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return fmt.Errorf("jwk use %q is not sig", jwk.Use)
	}
	switch k := jwk.Key.(type) {
	case *ecdsa.PublicKey:
		if alg == "ES256" && k.Curve == elliptic.P256() {
			return nil
		}
	case *rsa.PublicKey:
		if alg == "PS256" || alg == "RS256" {
			return checkRSA(k)
		}
	case ed25519.PublicKey:
		if alg == "EdDSA" {
			return nil
		}
	}
	return fmt.Errorf("jwk key type does not suit alg %q", alg)
}

// normalizePercent applies RFC 3986 §6.2.2.1 and §6.2.2.2 to an escaped
// URL: hex digits of percent-encodings in upper case, percent-encoded
// unreserved characters decoded. It copies only when something changes.
func normalizePercent(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			b.WriteByte(s[i])
			continue
		}
		c := unhex(s[i+1])<<4 | unhex(s[i+2])
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(s[i+1 : i+3]))
		}
		i += 2
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
