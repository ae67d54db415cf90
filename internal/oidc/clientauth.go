package oidc

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/go-jose/go-jose/v4"
)

// Client authentication methods (Options.ClientAuth), as OpenID Connect
// Dynamic Client Registration's token_endpoint_auth_method names them.
const (
	ClientSecretBasic       = "client_secret_basic"
	ClientSecretPost        = "client_secret_post"
	PrivateKeyJWT           = "private_key_jwt"
	TLSClientAuth           = "tls_client_auth"
	SelfSignedTLSClientAuth = "self_signed_tls_client_auth"
)

// IsMTLSClientAuth reports whether method authenticates the client by its
// TLS certificate (RFC 8705 §2).
func IsMTLSClientAuth(method string) bool {
	return method == TLSClientAuth || method == SelfSignedTLSClientAuth
}

// clientAuth is how one Client proves who it is on every call to the
// token, PAR, revocation and introspection endpoints (all go through
// post). It is built once, by New or WithCredentials.
type clientAuth struct {
	assertions *ClientAssertions // private_key_jwt
	err        error             // a configuration that cannot authenticate
}

// newClientAuth prepares o's client authentication. A configuration that
// cannot work (private_key_jwt without keys, tls_client_auth without a
// certificate) is kept as an error every call returns: New cannot fail,
// and the server checks these before it builds a Client.
func newClientAuth(o Options) clientAuth {
	switch o.ClientAuth {
	case "", ClientSecretBasic, ClientSecretPost:
		return clientAuth{}
	case PrivateKeyJWT:
		switch o.AssertionAudience {
		case "", AudienceIssuer, AudienceEndpoint:
		default:
			return clientAuth{err: fmt.Errorf("unknown client assertion audience %q", o.AssertionAudience)}
		}
		a, err := NewClientAssertions(o.SigningKeys, AssertionOptions{
			ClientID: o.ClientID, Audience: o.Issuer, Now: o.Now, Certificate: leafOf(o.ClientCertificate),
		})
		if err != nil {
			return clientAuth{err: err}
		}
		return clientAuth{assertions: a}
	case TLSClientAuth, SelfSignedTLSClientAuth:
		if o.ClientCertificate == nil {
			return clientAuth{err: fmt.Errorf("%s needs the client certificate", o.ClientAuth)}
		}
		return clientAuth{}
	default:
		return clientAuth{err: fmt.Errorf("unknown client authentication method %q", o.ClientAuth)}
	}
}

// Audiences of client assertions (Options.AssertionAudience).
const (
	// AudienceIssuer is the issuer identifier: what SPEC, the FAPI 2.0
	// Security Profile and the draft revising RFC 7523 ask for.
	AudienceIssuer = "issuer"
	// AudienceEndpoint is the URL of the endpoint the assertion is sent to
	// (RFC 7523 §3 and OIDC Core §9 allow it): Okta refuses any other
	// ("the audience claim for client_assertion must be the endpoint
	// invoked for the request"), and Entra ID's certificate credentials
	// take the token endpoint.
	AudienceEndpoint = "endpoint"
)

// authenticate adds the client's credentials to v, the form of a call to
// endpoint (the token, PAR, revocation or introspection endpoint), and
// reports whether they go in an HTTP Basic Authorization header instead:
//
//   - client_secret_basic: id and secret in Basic (RFC 6749 §2.3.1, each
//     form-encoded first);
//   - client_secret_post: client_id and client_secret in the form;
//   - private_key_jwt: client_id and a new client assertion (RFC 7523
//     §2.2: fresh jti, aud the issuer, or endpoint with AudienceEndpoint)
//     in the form;
//   - tls_client_auth, self_signed_tls_client_auth: client_id in the form
//     (RFC 8705 §2), the certificate in the TLS handshake.
func (c *Client) authenticate(endpoint string, v url.Values) (basic bool, err error) {
	if c.auth.err != nil {
		return false, c.auth.err
	}
	switch c.opts.ClientAuth {
	case ClientSecretPost:
		v.Set("client_id", c.opts.ClientID)
		v.Set("client_secret", c.opts.ClientSecret)
		return false, nil
	case PrivateKeyJWT:
		if c.opts.AssertionAudience == AudienceEndpoint {
			return false, c.auth.assertions.AddToFor(v, endpoint)
		}
		return false, c.auth.assertions.AddTo(v)
	case TLSClientAuth, SelfSignedTLSClientAuth:
		v.Set("client_id", c.opts.ClientID)
		return false, nil
	default:
		return true, nil
	}
}

// leafOf is the parsed leaf of a TLS certificate, or nil.
func leafOf(c *tls.Certificate) *x509.Certificate {
	if c == nil {
		return nil
	}
	if c.Leaf != nil {
		return c.Leaf
	}
	if len(c.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// MergeJWKS is the JSON Web Key Set of the public keys of several
// clients' SigningKeys (nil ones skipped), in order: what GET /bff/jwks
// serves when the main client and the service client each sign with their
// own key file. A key in more than one set is listed once; two different
// keys with the same kid are an error, since a provider could not tell
// which one verifies. Nil when there is no key at all.
func MergeJWKS(sets ...*SigningKeys) ([]byte, error) {
	var out jose.JSONWebKeySet
	seen := map[string][]byte{}
	for _, s := range sets {
		if s == nil {
			continue
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(s.jwks, &set); err != nil {
			return nil, fmt.Errorf("public keys: %w", err)
		}
		for _, k := range set.Keys {
			enc, err := json.Marshal(k)
			if err != nil {
				return nil, fmt.Errorf("public keys: %w", err)
			}
			if prev, dup := seen[k.KeyID]; dup {
				if !bytes.Equal(prev, enc) {
					return nil, fmt.Errorf("two different keys have the kid %q: give them distinct key ids", k.KeyID)
				}
				continue
			}
			seen[k.KeyID] = enc
			out.Keys = append(out.Keys, k)
		}
	}
	if len(out.Keys) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, errors.New("public keys: cannot encode the key set")
	}
	return b, nil
}
