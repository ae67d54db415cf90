package oidc

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Mutual TLS for OAuth clients, RFC 8705:
//
//   - §2: client authentication by certificate. tls_client_auth (§2.1: a
//     certificate from a CA the provider trusts, registered by its subject)
//     and self_signed_tls_client_auth (§2.2: a self-signed certificate
//     registered by its public key). The client proves nothing in the form
//     but its client_id; the TLS handshake is the proof.
//   - §3: certificate-bound access tokens. The provider puts the SHA-256
//     thumbprint of the client certificate in the token's cnf claim
//     ("x5t#S256"), and a resource server accepts the token only over a
//     connection on which that certificate was presented. The gateway
//     presents the same certificate to its upstreams (see package server).
//   - §5: mtls_endpoint_aliases. A provider may serve the endpoints that
//     need a client certificate on other URLs (a port that asks for one),
//     listed in discovery under mtls_endpoint_aliases. A client that uses
//     mutual TLS uses the aliases for the endpoints it calls directly.
//
// With Options.ClientCertificate set the Client does all three: the
// certificate is offered on every connection to the provider that asks
// for one, whatever the client authentication method, and the aliases of
// mtlsAliased replace the endpoints of the same name before the discovery
// document is read. The authorization and end-session endpoints are never
// aliased: the browser visits them, and it has no such certificate.

// metadataMTLSAliases is the discovery member of RFC 8705 §5.
const metadataMTLSAliases = "mtls_endpoint_aliases"

// mtlsAliased are the discovery members an mtls_endpoint_aliases entry
// replaces: the endpoints the gateway itself calls with client
// authentication or a certificate-bound token.
var mtlsAliased = []string{
	"token_endpoint",
	"revocation_endpoint",
	"introspection_endpoint",
	"pushed_authorization_request_endpoint",
	"userinfo_endpoint",
}

// applyMTLSAliases returns the discovery document body with each endpoint
// of mtlsAliased replaced by its mtls_endpoint_aliases entry, when the
// document has one (RFC 8705 §5). Every alias used must be an absolute URL
// that checkEndpoint accepts (https when the issuer is). A document
// without aliases is returned as it is.
func applyMTLSAliases(body []byte, secure bool) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errors.New("metadata is not a JSON object")
	}
	raw, ok := doc[metadataMTLSAliases]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return body, nil
	}
	var aliases map[string]json.RawMessage
	if err := json.Unmarshal(raw, &aliases); err != nil {
		return nil, errors.New("mtls_endpoint_aliases is not a JSON object")
	}
	for _, name := range mtlsAliased {
		v, ok := aliases[name]
		if !ok {
			continue
		}
		var alias string
		if err := json.Unmarshal(v, &alias); err != nil || alias == "" {
			return nil, fmt.Errorf("mtls_endpoint_aliases: %s is not a URL", name)
		}
		if err := checkEndpoint(alias, secure); err != nil {
			return nil, fmt.Errorf("mtls_endpoint_aliases: %s: %w", name, err)
		}
		doc[name] = v
	}
	return json.Marshal(doc)
}

// withClientCertificate returns hc presenting cert whenever a server asks
// for a client certificate. hc is not modified: its transport is cloned and
// so is the transport's TLS configuration (keeping RootCAs and the rest),
// so a caller's client that trusts a private CA keeps trusting it.
//
// The certificate is handed out by GetClientCertificate, as
// proxy.LoadTLS does, so that it is presented even when the server's list
// of acceptable CAs does not name its issuer (self-signed certificates,
// RFC 8705 §2.2): the provider then decides, and says why it refuses.
//
// Only an *http.Transport (also inside the limit of guardClient) can be
// given a certificate. Any other transport makes every call fail with an
// error saying so: a gateway configured for mutual TLS must not quietly
// talk to its provider without it.
func withClientCertificate(hc *http.Client, cert *tls.Certificate) *http.Client {
	g := *hc
	rt := g.Transport
	lb, limited := rt.(limitBody)
	if limited {
		rt = lb.rt
	}
	var out http.RoundTripper
	if t, ok := rt.(*http.Transport); ok {
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		} else {
			t.TLSClientConfig = t.TLSClientConfig.Clone()
		}
		t.TLSClientConfig.Certificates = nil
		t.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
		out = t
	} else {
		out = failTransport{fmt.Errorf("the HTTP client's transport %T cannot present the client certificate (mutual TLS needs an *http.Transport)", rt)}
	}
	if limited {
		out = limitBody{out}
	}
	g.Transport = out
	return &g
}

// failTransport fails every request with err.
type failTransport struct{ err error }

func (f failTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return nil, f.err
}
