package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// TLSFiles is how the gateway meets an https upstream: whom it trusts,
// which client certificate it presents (mutual TLS), which name it
// checks. The zero value is the default: the system roots, no client
// certificate, the upstream URL's host.
type TLSFiles struct {
	// CAFile is a PEM file of CA certificates. When set they are the only
	// roots the upstream's certificate may chain to: the system roots are
	// not consulted for the route, so an internal CA cannot be bypassed by
	// a certificate some public CA issued for the same name.
	CAFile string
	// CertFile is the PEM client certificate (leaf first, then any
	// intermediates) and KeyFile its PEM private key (PKCS#8, PKCS#1 or
	// SEC 1, unencrypted). Both or neither.
	CertFile, KeyFile string
	// ServerName is the name the upstream's certificate must hold, and the
	// SNI sent, when the URL's host is not that name (an IP address, an
	// internal alias).
	ServerName string
}

// LoadTLS reads f's files and returns the client TLS configuration for one
// upstream: TLS 1.2 or later, RootCAs from CAFile, ServerName, and the
// client certificate.
//
// The files are read here, once: a configuration reload builds new routes,
// which read them again, so a renewed certificate takes effect on the new
// routes' connections. The certificate is handed out by
// GetClientCertificate rather than listed in Certificates, so that it is
// presented whenever the upstream asks for one, even when the upstream's
// list of acceptable CAs does not name its issuer: the upstream then says
// why it refuses it, instead of the gateway silently sending none.
//
// Every http.Transport needs its own copy (Clone): net/http adds its ALPN
// protocols to the configuration it is given.
func LoadTLS(f TLSFiles) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CAFile != "" {
		pool, err := loadRoots(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		c.RootCAs = pool
	}
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file and key_file: %w", err)
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		}
	case f.CertFile != "" || f.KeyFile != "":
		return nil, errors.New("cert_file and key_file go together: set both or neither")
	}
	return c, nil
}

// loadRoots reads a PEM file of certificates into a new pool; anything
// else in the file is an error, not skipped as x509.CertPool's
// AppendCertsFromPEM would.
func loadRoots(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for n := 0; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			if n == 0 {
				return nil, errors.New("holds no PEM certificate")
			}
			return pool, nil
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("block %d is %q, not a CERTIFICATE", n+1, b.Type)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
	}
}
