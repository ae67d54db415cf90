package nodeop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// certLifetime is how long test certificates are valid (from an hour ago,
// so that small clock differences do not matter).
const certLifetime = 24 * time.Hour

// CA is a throwaway certificate authority, made for one test. It signs the
// provider's server certificate and the clients' certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// File is the CA certificate as PEM: give it to anything that must
	// trust the provider (SSL_CERT_FILE, a ca_file setting).
	File string
	// Pool holds Cert.
	Pool *x509.CertPool

	dir string
}

// Cert is a certificate with its private key, and both as PEM files.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// CertFile holds the certificate (PEM), KeyFile the key (PKCS#8 PEM).
	CertFile, KeyFile string
	// TLS is ready for tls.Config.Certificates.
	TLS tls.Certificate
}

// NewCA makes a CA whose files live in a test temporary directory.
func NewCA(t testing.TB) *CA {
	t.Helper()
	dir := t.TempDir()
	key := newECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "Cloakroom Test CA", Organization: []string{"Cloakroom Test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	cert := createCert(t, tmpl, tmpl, key.Public(), key)
	ca := &CA{Cert: cert, Key: key, Pool: x509.NewCertPool(), dir: dir}
	ca.Pool.AddCert(cert)
	ca.File = writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", cert.Raw)
	return ca
}

// ServerCert issues a TLS server certificate for 127.0.0.1, ::1 and
// localhost.
func (ca *CA) ServerCert(t testing.TB) *Cert {
	t.Helper()
	key := newECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"Cloakroom Test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	return newCert(t, ca.dir, "server", createCert(t, tmpl, ca.Cert, key.Public(), ca.Key), key)
}

// ClientCert issues a TLS client certificate with subject
// "CN=<commonName>,O=Cloakroom Test", for tls_client_auth.
func (ca *CA) ClientCert(t testing.TB, commonName string) *Cert {
	t.Helper()
	key := newECKey(t)
	tmpl := clientTemplate(t, commonName)
	return newCert(t, ca.dir, "client-"+commonName, createCert(t, tmpl, ca.Cert, key.Public(), ca.Key), key)
}

// SelfSignedCert makes a self-signed TLS client certificate, for
// self_signed_tls_client_auth (register it with [Cert.JWK]).
func SelfSignedCert(t testing.TB, commonName string) *Cert {
	t.Helper()
	key := newECKey(t)
	tmpl := clientTemplate(t, commonName)
	return newCert(t, t.TempDir(), "self-signed-"+commonName, createCert(t, tmpl, tmpl, key.Public(), key), key)
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

func clientTemplate(t testing.TB, commonName string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"Cloakroom Test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

func newCert(t testing.TB, dir, name string, cert *x509.Certificate, key crypto.Signer) *Cert {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return &Cert{
		Cert:     cert,
		Key:      key,
		CertFile: writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", cert.Raw),
		KeyFile:  writePEM(t, filepath.Join(dir, name+".key"), "PRIVATE KEY", der),
		TLS:      tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert},
	}
}

func createCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatalf("nodeop: creating certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return cert
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return n
}

func writePEM(t testing.TB, path, blockType string, der []byte) string {
	t.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return path
}
