package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// upstreamTLS checks apis[i].tls (p is "apis[i]"): an https upstream, and
// files that exist and parse, so that serve, and a reload, do not fail on
// them later. No message shows a file's contents.
func (v *validator) upstreamTLS(p string, a API) {
	t := a.TLS
	if t == nil {
		return
	}
	key := p + ".tls"
	if u, err := url.Parse(a.Upstream); err == nil && u.Scheme == "http" {
		v.errorf(key, "applies only to an https upstream: write %s.upstream as https://..., or remove tls", p)
	}
	if *t == (UpstreamTLS{}) {
		v.warnf(key, "sets nothing: set ca_file, cert_file with key_file, or server_name, or remove it")
	}
	if t.CAFile != "" {
		v.caFile(key+".ca_file", t.CAFile)
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		v.keyPair(key+".cert_file", key+".key_file", t.CertFile, t.KeyFile)
	case t.CertFile != "":
		v.errorf(key+".cert_file", "needs key_file, the certificate's private key: set both, or neither")
	case t.KeyFile != "":
		v.errorf(key+".key_file", "needs cert_file, the client certificate: set both, or neither")
	}
	if t.ServerName != "" && !isHostName(t.ServerName) {
		v.errorf(key+".server_name", "%s is not a host name: write the name the upstream's certificate holds, without scheme or port, e.g. orders.internal", v.quote(key+".server_name", t.ServerName))
	}
}

// caFile checks a PEM file of CA certificates: certificates only.
func (v *validator) caFile(key, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		v.errorf(key, "cannot read the file: %s", fsReason(err))
		return
	}
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		switch {
		case b == nil && n == 1:
			v.errorf(key, "holds no PEM certificate: put the CA certificates in it as -----BEGIN CERTIFICATE----- blocks")
			return
		case b == nil:
			return
		case b.Type != "CERTIFICATE":
			v.errorf(key, "PEM block %d is %q: a CA file holds certificates only", n, b.Type)
			return
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			v.errorf(key, "certificate %d does not parse: %v", n, err)
			return
		}
	}
}

// keyPair checks that certFile and keyFile, at keys certKey and keyKey
// (apis[i].tls.cert_file and key_file, or oidc.client_certificate_file and
// client_certificate_key_file), are a certificate and its key.
func (v *validator) keyPair(certKey, keyKey, certFile, keyFile string) {
	leaf := v.loadKeyPair(certKey, keyKey, certFile, keyFile, "client")
	if leaf == nil {
		return
	}
	if exp := leaf.NotAfter; time.Now().After(exp) {
		v.warnf(certKey, "the certificate expired on %s: it will be refused; renew it", exp.UTC().Format(time.DateOnly))
	}
}

// loadKeyPair reads certFile and keyFile, at keys certKey and keyKey, and
// returns the first certificate when they are a PEM certificate (role
// names it in messages: client, server) and its unencrypted key; else it
// reports why and returns nil. No message shows a file's contents.
func (v *validator) loadKeyPair(certKey, keyKey, certFile, keyFile, role string) *x509.Certificate {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		v.errorf(certKey, "cannot read the file: %s", fsReason(err))
	}
	keyPEM, kerr := os.ReadFile(keyFile)
	if kerr != nil {
		v.errorf(keyKey, "cannot read the file: %s", fsReason(kerr))
	}
	if err != nil || kerr != nil {
		return nil
	}
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		v.errorf(certKey, "holds no PEM certificate first: put the %s certificate in it, then any intermediates", role)
		return nil
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		v.errorf(certKey, "the certificate does not parse: %v", err)
		return nil
	}
	// The messages of X509KeyPair are fixed texts: no key material.
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		v.errorf(keyKey, "is not the unencrypted PEM private key of %s's certificate: %s", lastKey(certKey), strings.TrimPrefix(err.Error(), "tls: "))
		return nil
	}
	return leaf
}

// isHostName reports whether s is a DNS name (letters, digits, "-" and
// "_" in dot-separated labels) or an IP address.
func isHostName(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
