package nodeop

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/cloakroom/cloakroom/internal/tlstest"
)

// CA is a throwaway certificate authority, made for one test: a
// [tlstest.CA] named "Cloakroom Test CA". It signs the provider's server
// certificate and the clients' certificates. Its File is the CA
// certificate as PEM: give it to anything that must trust the provider
// (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, a ca_file setting).
type CA tlstest.CA

// Cert is a certificate with its private key, and both as PEM files: a
// [tlstest.Cert].
type Cert tlstest.Cert

// NewCA makes a CA whose files live in a test temporary directory.
func NewCA(t testing.TB) *CA {
	t.Helper()
	return (*CA)(tlstest.NewCA(t, "Cloakroom Test CA"))
}

// ServerCert issues a TLS server certificate for 127.0.0.1, ::1 and
// localhost.
func (ca *CA) ServerCert(t testing.TB) *Cert {
	t.Helper()
	return (*Cert)((*tlstest.CA)(ca).Server(t, "localhost", "127.0.0.1", "::1"))
}

// ClientCert issues a TLS client certificate with subject
// "CN=<commonName>,O=Cloakroom Test", for tls_client_auth.
func (ca *CA) ClientCert(t testing.TB, commonName string) *Cert {
	t.Helper()
	return (*Cert)((*tlstest.CA)(ca).Client(t, commonName))
}

// SelfSignedCert makes a self-signed TLS client certificate, for
// self_signed_tls_client_auth (register it with [Cert.JWK]).
func SelfSignedCert(t testing.TB, commonName string) *Cert {
	t.Helper()
	return (*Cert)(tlstest.SelfSigned(t, commonName))
}

// HTTPClient returns a client that trusts only the CA, without a client
// certificate. Every call returns a new client with its own transport
// (closed at test cleanup) and no cookie jar.
func (ca *CA) HTTPClient(t testing.TB) *http.Client {
	return ca.httpClient(t, nil)
}

// HTTPClientWithCert is [CA.HTTPClient] presenting cert when the server
// asks for a client certificate.
func (ca *CA) HTTPClientWithCert(t testing.TB, cert *Cert) *http.Client {
	return ca.httpClient(t, cert)
}

func (ca *CA) httpClient(t testing.TB, cert *Cert) *http.Client {
	cfg := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS}
	}
	// Node.js closes an idle keep-alive connection after 5 s; a POST sent
	// on one just as it closes fails with EOF and is not retried. Idle
	// connections are dropped well before that.
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, IdleConnTimeout: 2 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// SubjectDN is the certificate's subject as an RFC 4514 string, the form
// tls_client_auth_subject_dn takes.
func (c *Cert) SubjectDN() string { return c.Cert.Subject.String() }

// Thumbprint is the base64url SHA-256 of the DER certificate: the
// "x5t#S256" of a certificate-bound token's cnf claim (RFC 8705 section
// 3.1).
func (c *Cert) Thumbprint() string {
	sum := sha256.Sum256(c.Cert.Raw)
	return b64(sum[:])
}

// JWK is the certificate's public key as a JWK carrying the certificate
// (x5c): the client's jwks for self_signed_tls_client_auth.
func (c *Cert) JWK() jose.JSONWebKey {
	sum := sha256.Sum256(c.Cert.Raw)
	return jose.JSONWebKey{
		Key:                         c.Key.Public(),
		Use:                         "sig",
		Certificates:                []*x509.Certificate{c.Cert},
		CertificateThumbprintSHA256: sum[:],
	}
}
