package tlstest_test

import (
	"crypto/x509"
	"testing"

	"github.com/cloakroom/cloakroom/internal/tlstest"
)

func TestVerify(t *testing.T) {
	ca := tlstest.NewCA(t, "Test CA")
	self := tlstest.SelfSigned(t, "self")
	selfPool := x509.NewCertPool()
	selfPool.AddCert(self.Cert)
	tests := []struct {
		name  string
		cert  *tlstest.Cert
		roots *x509.CertPool
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{"client by the CA", ca.Client(t, "web"), ca.Pool, x509.ExtKeyUsageClientAuth, true},
		{"server by the CA", ca.Server(t, "localhost", "127.0.0.1"), ca.Pool, x509.ExtKeyUsageServerAuth, true},
		{"self-signed, trusted as itself", self, selfPool, x509.ExtKeyUsageClientAuth, true},
		{"self-signed, not by the CA", self, ca.Pool, x509.ExtKeyUsageClientAuth, false},
		{"client, not for servers", ca.Client(t, "web"), ca.Pool, x509.ExtKeyUsageServerAuth, false},
		{"expired", ca.Expired(t, "old"), ca.Pool, x509.ExtKeyUsageClientAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cert.Cert.Verify(x509.VerifyOptions{Roots: tt.roots, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if got := err == nil; got != tt.ok {
				t.Errorf("verified: got %v, want %v (%v)", got, tt.ok, err)
			}
			if tt.cert.CertFile == "" || tt.cert.KeyFile == "" {
				t.Errorf("files: got %q and %q, want both", tt.cert.CertFile, tt.cert.KeyFile)
			}
		})
	}
}
