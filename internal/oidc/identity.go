package oidc

import (
	"crypto/sha256"
	"encoding/base64"
)

// ClientID is the client's ID at the provider: Options.ClientID, or the
// Credentials' of WithCredentials.
func (c *Client) ClientID() string { return c.opts.ClientID }

// CertificateThumbprint is the base64url SHA-256 thumbprint of the client
// certificate (Options.ClientCertificate) the client presents to the
// provider: the cnf "x5t#S256" of the tokens bound to it (RFC 8705 §3.1).
// It is "" without a certificate.
func (c *Client) CertificateThumbprint() string {
	cert := c.opts.ClientCertificate
	if cert == nil || len(cert.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(cert.Certificate[0])
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
