package oidc

import (
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ClientAssertionType is the client_assertion_type of a JWT client
// assertion (RFC 7523 §2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Form parameter names of JWT client authentication (RFC 7521 §4.2).
const (
	ParamClientAssertionType = "client_assertion_type"
	ParamClientAssertion     = "client_assertion"
)

// MaxAssertionLifetime is the longest a client assertion may live: SPEC
// says exp is at most 60 s after iat.
const MaxAssertionLifetime = 60 * time.Second

// AssertionOptions configure ClientAssertions.
type AssertionOptions struct {
	// ClientID is iss and sub of every assertion, and the client_id
	// parameter sent with it. Required.
	ClientID string
	// Audience is aud, a single string. Required. Cloakroom passes the
	// issuer identifier: SPEC says so, the FAPI 2.0 Security Profile
	// requires it (panva's oidc-provider in its FAPI 2.0 mode refuses
	// anything else, and an array), and so does the draft revising RFC
	// 7523. RFC 7523 §3 and OIDC Core §9 also allow the token endpoint's
	// URL, which some providers want instead; a caller may pass that.
	Audience string
	// Lifetime is exp - iat: default and at most MaxAssertionLifetime.
	Lifetime time.Duration
	// Now is the clock of iat and exp; default time.Now.
	Now func() time.Time
	// Certificate, when it holds the public half of the signing key, is
	// named in every assertion's header by its thumbprints: "x5t#S256"
	// (RFC 7515 §4.1.8) and "x5t" (SHA-1, §4.1.7). Entra ID identifies a
	// certificate credential by them (its certificate-credentials page
	// asks for x5t#S256 with PS256, x5t with RS256) and refuses an
	// assertion without. A certificate for another key is ignored: it is
	// then the mutual TLS certificate only.
	Certificate *x509.Certificate
}

// ClientAssertions makes private_key_jwt client assertions (RFC 7523 §2.2
// and §3, OIDC Core §9) for one client with SigningKeys. Each has
//
//   - header: alg (PS256 or ES256), kid, and typ "JWT". RFC 7523 says
//     nothing of typ; "JWT" is RFC 7519 §5.1's value for a JWT, the one
//     Entra ID's certificate-credential documentation shows, and panva's
//     oidc-provider checks no typ on client assertions. The
//     "client-authentication+jwt" type of the draft revising RFC 7523 is
//     not sent: providers that predate the draft may refuse it.
//   - claims: iss = sub = the client id, aud (one string), a fresh random
//     jti (128 bits), iat, and exp = iat + Lifetime. No nbf: a provider
//     whose clock is a little behind would refuse it, and RFC 7523 does
//     not need it.
//
// A ClientAssertions is safe for concurrent use; it signs with the keys'
// signer, parsed once.
type ClientAssertions struct {
	keys     *SigningKeys
	signer   jose.Signer
	clientID string
	aud      string
	life     time.Duration
	now      func() time.Time
}

// NewClientAssertions checks opts and returns the assertion maker.
func NewClientAssertions(keys *SigningKeys, opts AssertionOptions) (*ClientAssertions, error) {
	if keys == nil {
		return nil, errors.New("client assertions need a signing key")
	}
	if opts.ClientID == "" {
		return nil, errors.New("client assertions need a client id")
	}
	if opts.Audience == "" {
		return nil, errors.New("client assertions need an audience (the issuer)")
	}
	if opts.Lifetime == 0 {
		opts.Lifetime = MaxAssertionLifetime
	}
	if opts.Lifetime < time.Second || opts.Lifetime > MaxAssertionLifetime {
		return nil, fmt.Errorf("client assertion lifetime %s is not between 1s and %s", opts.Lifetime, MaxAssertionLifetime)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &ClientAssertions{keys: keys, signer: keys.assertion, clientID: opts.ClientID, aud: opts.Audience, life: opts.Lifetime, now: opts.Now}
	if opts.Certificate != nil && keys.Certifies(opts.Certificate) {
		s, err := keys.signerWithCertificate(opts.Certificate)
		if err != nil {
			return nil, err
		}
		a.signer = s
	}
	return a, nil
}

// Certifies reports whether cert holds the public half of the signing key.
func (k *SigningKeys) Certifies(cert *x509.Certificate) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(k.key.Public().Key)
}

// signerWithCertificate is the assertion signer with the certificate's
// thumbprints in the header (see AssertionOptions.Certificate).
func (k *SigningKeys) signerWithCertificate(cert *x509.Certificate) (jose.Signer, error) {
	s256 := sha256.Sum256(cert.Raw)
	s1 := sha1.Sum(cert.Raw) // #nosec G401 -- x5t is SHA-1 by definition (RFC 7515 §4.1.7); it names, it does not protect
	opts := (&jose.SignerOptions{}).WithType("JWT").
		WithHeader("x5t#S256", base64.RawURLEncoding.EncodeToString(s256[:])).
		WithHeader("x5t", base64.RawURLEncoding.EncodeToString(s1[:]))
	key := k.key
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: &key}, opts)
	if err != nil {
		return nil, errors.New("cannot sign client assertions with the certificate's thumbprints")
	}
	return s, nil
}

type assertionClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	ID       string `json:"jti"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
}

// Assertion returns a new signed client assertion.
func (a *ClientAssertions) Assertion() (string, error) { return a.assertion(a.aud) }

// assertion returns a new signed client assertion for aud.
func (a *ClientAssertions) assertion(aud string) (string, error) {
	now := a.now()
	payload, err := json.Marshal(assertionClaims{
		Issuer:   a.clientID,
		Subject:  a.clientID,
		Audience: aud,
		ID:       newJTI(),
		IssuedAt: now.Unix(),
		Expiry:   now.Add(a.life).Unix(),
	})
	if err != nil {
		return "", fmt.Errorf("encode client assertion: %w", err)
	}
	jws, err := a.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return jws.CompactSerialize()
}

// AddTo sets client_id, client_assertion_type and a new client_assertion
// in v, the form of a call to the token, PAR, revocation or introspection
// endpoint. client_id is optional with an assertion (RFC 7521 §4.2) but
// harmless, and some providers (Entra ID) require it.
func (a *ClientAssertions) AddTo(v url.Values) error {
	s, err := a.Assertion()
	if err != nil {
		return err
	}
	v.Set("client_id", a.clientID)
	v.Set(ParamClientAssertionType, ClientAssertionType)
	v.Set(ParamClientAssertion, s)
	return nil
}

// AddToFor is AddTo with aud as the assertion's audience instead of
// AssertionOptions.Audience: the URL of the endpoint called, for providers
// that want that (see AudienceEndpoint).
func (a *ClientAssertions) AddToFor(v url.Values, aud string) error {
	if aud == "" {
		return errors.New("client assertion: no audience")
	}
	s, err := a.assertion(aud)
	if err != nil {
		return err
	}
	v.Set("client_id", a.clientID)
	v.Set(ParamClientAssertionType, ClientAssertionType)
	v.Set(ParamClientAssertion, s)
	return nil
}

// Params returns the form parameters AddTo sets.
func (a *ClientAssertions) Params() (url.Values, error) {
	v := make(url.Values, 3)
	if err := a.AddTo(v); err != nil {
		return nil, err
	}
	return v, nil
}

// newJTI returns 128 random bits, base64url: a jti (RFC 7519 §4.1.7) no
// other assertion or proof will have.
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
