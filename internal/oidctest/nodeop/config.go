package nodeop

import (
	"encoding/json"
	"maps"

	"github.com/go-jose/go-jose/v4"
)

// Client is one client registration, as OpenID Connect Dynamic Client
// Registration metadata (the JSON names are the registration names). Only
// non-zero fields are sent; Extra adds metadata this struct does not name.
type Client struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`

	// TokenEndpointAuthMethod is client_secret_basic (the provider's
	// default), client_secret_post, private_key_jwt, tls_client_auth or
	// self_signed_tls_client_auth.
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`

	// JWKS holds public keys: those that verify private_key_jwt assertions,
	// or, for self_signed_tls_client_auth, keys whose x5c is the client's
	// certificate (see [Cert.JWK]). JWKSURI is the alternative that the
	// provider fetches (from 127.0.0.1 too, trusting the test CA).
	JWKS    *jose.JSONWebKeySet `json:"jwks,omitempty"`
	JWKSURI string              `json:"jwks_uri,omitempty"`

	// TLSClientAuthSubjectDN is the RFC 4514 subject of the client's
	// certificate for tls_client_auth (see [Cert.SubjectDN]).
	TLSClientAuthSubjectDN string `json:"tls_client_auth_subject_dn,omitempty"`

	// TLSClientCertificateBoundAccessTokens binds tokens to the client's
	// certificate (RFC 8705 section 3); DPoPBoundAccessTokens requires DPoP
	// proofs on every token request (RFC 9449 section 5.2).
	TLSClientCertificateBoundAccessTokens bool `json:"tls_client_certificate_bound_access_tokens,omitempty"`
	DPoPBoundAccessTokens                 bool `json:"dpop_bound_access_tokens,omitempty"`

	RedirectURIs           []string `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri,omitempty"`

	// GrantTypes defaults to authorization_code and refresh_token;
	// client_credentials also needs Options.ClientCredentials.
	GrantTypes    []string `json:"grant_types,omitempty"`
	ResponseTypes []string `json:"response_types,omitempty"`

	// IDTokenSignedResponseAlg defaults to PS256 (the provider also has
	// ES256, EdDSA and RS256 keys).
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg,omitempty"`

	// Extra is merged into the registration as is.
	Extra map[string]any `json:"-"`
}

// MarshalJSON writes the named fields and then Extra.
func (c Client) MarshalJSON() ([]byte, error) {
	type plain Client
	b, err := json.Marshal(plain(c))
	if err != nil || len(c.Extra) == 0 {
		return b, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	maps.Copy(m, c.Extra)
	return json.Marshal(m)
}

// Account is a user's profile claims. Every login name is accepted on the
// provider's login page (any password); Options.Accounts only chooses the
// claims served for some of them.
type Account struct {
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
}

// fileConfig is the JSON file that e2e/oidc-provider/provider.mjs reads.
type fileConfig struct {
	Host     string             `json:"host"`
	Port     int                `json:"port"`
	MTLSPort int                `json:"mtlsPort"`
	TLS      tlsFiles           `json:"tls"`
	Features features           `json:"features"`
	Resource *resource          `json:"resource,omitempty"`
	TTL      ttls               `json:"ttl"`
	Clients  []Client           `json:"clients"`
	Accounts map[string]Account `json:"accounts,omitempty"`
}

type tlsFiles struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
	CA   string `json:"ca"`
}

type features struct {
	PAR               bool `json:"par"`
	RequirePAR        bool `json:"requirePar"`
	DPoP              bool `json:"dpop"`
	DPoPNonce         bool `json:"dpopNonce"`
	MTLS              bool `json:"mtls"`
	FAPI2             bool `json:"fapi2"`
	BackchannelLogout bool `json:"backchannelLogout"`
	Revocation        bool `json:"revocation"`
	Introspection     bool `json:"introspection"`
	ClientCredentials bool `json:"clientCredentials"`
}

type resource struct {
	URI   string `json:"uri"`
	Scope string `json:"scope,omitempty"`
}

// ttls are in seconds; zero keeps the script's defaults.
type ttls struct {
	AccessToken  int `json:"accessToken,omitempty"`
	IDToken      int `json:"idToken,omitempty"`
	RefreshToken int `json:"refreshToken,omitempty"`
}
