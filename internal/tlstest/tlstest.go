// Package tlstest makes throwaway certificate authorities for tests: a CA,
// server certificates for the names a test needs, client certificates by
// common name, each also written as PEM files in a temporary directory, as
// a configuration names them, and self-signed client certificates. It is
// test support: only tests import it, _test.go files and the test-support
// packages under internal/oidctest.
package tlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// lifetime is how long certificates are valid, from an hour ago so that a
// skewed clock does not matter.
const lifetime = 24 * time.Hour

// CA is a certificate authority made for one test.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// File is the CA certificate as PEM (a ca_file).
	File string
	// Pool holds Cert alone.
	Pool *x509.CertPool

	dir string
}

// Cert is an issued certificate with its key, in memory and as files.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// CertFile holds the certificate, KeyFile the key (PKCS#8), as PEM.
	CertFile, KeyFile string
	// TLS is ready for tls.Config.Certificates.
	TLS tls.Certificate
}

// NewCA makes a CA named commonName whose files live in a temporary
// directory of t.
func NewCA(t testing.TB, commonName string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, commonName)
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	tmpl.MaxPathLenZero = true
	cert := create(t, tmpl, tmpl, key.Public(), key)
	ca := &CA{Cert: cert, Key: key, Pool: x509.NewCertPool(), dir: t.TempDir()}
	ca.Pool.AddCert(cert)
	ca.File = writePEM(t, ca.dir, "ca-*.pem", "CERTIFICATE", cert.Raw)
	return ca
}

// Server issues a server certificate for names: each an IP address or a
// DNS name.
func (ca *CA) Server(t testing.TB, names ...string) *Cert {
	t.Helper()
	tmpl := template(t, names[0])
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return ca.issue(t, tmpl)
}

// Client issues a client certificate with subject "CN=<commonName>".
func (ca *CA) Client(t testing.TB, commonName string) *Cert {
	t.Helper()
	tmpl := template(t, commonName)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.issue(t, tmpl)
}

// Expired issues a client certificate with subject "CN=<commonName>" that
// expired an hour ago.
func (ca *CA) Expired(t testing.TB, commonName string) *Cert {
	t.Helper()
	tmpl := template(t, commonName)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	return ca.issue(t, tmpl)
}

// SelfSigned makes a self-signed client certificate with subject
// "CN=<commonName>", whose files live in a temporary directory of t.
func SelfSigned(t testing.TB, commonName string) *Cert {
	t.Helper()
	tmpl := template(t, commonName)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return issue(t, t.TempDir(), tmpl, nil)
}

func (ca *CA) issue(t testing.TB, tmpl *x509.Certificate) *Cert {
	t.Helper()
	return issue(t, ca.dir, tmpl, ca)
}

// issue makes a certificate from tmpl for a new key, signed by ca (by the
// key itself when ca is nil), and writes it and the key into dir.
func issue(t testing.TB, dir string, tmpl *x509.Certificate, ca *CA) *Cert {
	t.Helper()
	key := newKey(t)
	parent, signer := tmpl, crypto.Signer(key)
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
	}
	cert := create(t, tmpl, parent, key.Public(), signer)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	return &Cert{
		Cert:     cert,
		Key:      key,
		CertFile: writePEM(t, dir, "cert-*.pem", "CERTIFICATE", cert.Raw),
		KeyFile:  writePEM(t, dir, "key-*.pem", "PRIVATE KEY", der),
		TLS:      tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert},
	}
}

func template(t testing.TB, commonName string) *x509.Certificate {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	return &x509.Certificate{
		SerialNumber: n,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"Cloakroom Test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatalf("tlstest: creating %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	return cert
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	return k
}

// writePEM writes der as one PEM block to a new file in dir named after
// pattern (os.CreateTemp) and returns its path.
func writePEM(t testing.TB, dir, pattern, blockType string, der []byte) string {
	t.Helper()
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	defer f.Close()
	if err := pem.Encode(f, &pem.Block{Type: blockType, Bytes: der}); err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	return f.Name()
}
