package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidc"
)

// clientCredentials are what the gateway's clients prove themselves with,
// read from their files once per build of the gateway (a reload reads
// them again: that is how keys and certificates are rotated) and shared:
// the signing keys of private_key_jwt, the client certificate of mutual
// TLS and certificate-bound tokens, and the public JWKS of /bff/jwks.
type clientCredentials struct {
	main, service *oidc.SigningKeys // private_key_jwt; nil otherwise
	cert          *tls.Certificate  // oidc.client_certificate_file; nil without
	jwks          []byte            // public keys of main and service; nil without
}

// loadClientCredentials reads and parses the key and certificate files of
// cfg, one frontend's settings. Its problems carry the key and line of
// the file that failed (at names the file's key of a key of cfg: the
// frontends[] entry's or the top level's), never the file's contents. New
// refuses to build with any, and `cloakroom check` reports them
// (CheckClientAuth): both accept exactly the same files.
func loadClientCredentials(cfg *config.Config, at func(string) string) (*clientCredentials, []config.Problem) {
	var (
		c    clientCredentials
		list []config.Problem
	)
	fail := func(key string, err error) {
		key = at(key)
		list = append(list, config.Problem{Line: keyLine(cfg, key), Key: key, Msg: err.Error()})
	}
	o := cfg.OIDC
	if o.ClientAuth == config.PrivateKeyJWT && o.PrivateKeyFile != "" {
		keys, err := oidc.LoadSigningKeys(o.PrivateKeyFile)
		if err != nil {
			fail("oidc.private_key_file", err)
		}
		c.main = keys
	}
	if sc := o.ServiceClient; sc != nil && sc.ClientAuth == config.PrivateKeyJWT && sc.PrivateKeyFile != "" {
		if sc.PrivateKeyFile == o.PrivateKeyFile && c.main != nil {
			c.service = c.main // one file, parsed once
		} else if keys, err := oidc.LoadSigningKeys(sc.PrivateKeyFile); err != nil {
			fail("oidc.service_client.private_key_file", err)
		} else {
			c.service = keys
		}
	}
	if o.ClientCertificateFile != "" && o.ClientCertificateKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.ClientCertificateFile, o.ClientCertificateKeyFile)
		if err != nil {
			// The messages of LoadX509KeyPair name the files or are fixed
			// texts: no key material.
			fail("oidc.client_certificate_file", fmt.Errorf("client certificate and key: %w", err))
		} else {
			c.cert = &cert
		}
	}
	jwks, err := oidc.MergeJWKS(c.main, c.service)
	if err != nil {
		fail("oidc.service_client.private_key_file", fmt.Errorf("published with oidc.private_key_file's keys at /bff/jwks: %w", err))
	}
	c.jwks = jwks
	return &c, list
}

// CheckClientAuth loads the clients' signing keys and client certificate
// the way New does, without any network, and reports what only that
// reveals: a key of the wrong type or size, a JWKS whose first key is
// public, two keys with one kid. It checks every frontend; a file that
// several inherit from the top level is reported once. `cloakroom check`
// runs it.
func CheckClientAuth(cfg *config.Config) []config.Problem {
	var out []config.Problem
	for _, fc := range frontendConfigs(cfg) {
		_, list := loadClientCredentials(fc.cfg, fc.at)
		for _, p := range list {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// problemsError is the error New returns for problems: one line each.
func problemsError(list []config.Problem) error {
	msgs := make([]string, len(list))
	for i, p := range list {
		msgs[i] = p.Key + ": " + p.Msg
	}
	return errors.New(strings.Join(msgs, "; "))
}
