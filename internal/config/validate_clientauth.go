package config

import (
	"bytes"
	"io"
	"os"
	"strings"
)

// maxKeyFileBytes bounds oidc.private_key_file, as the key loader does.
const maxKeyFileBytes = 1 << 20

// clientAuth checks the authentication settings of one client. What can
// only be known by parsing the key (its type, size, kids) is checked by
// the server's own loader, which `cloakroom check` runs too, so that check
// and serve accept the same files.
func (v *validator) clientAuth(k clientKeys) {
	key := func(name string) string { return k.prefix + "." + name }
	secret := k.secret != "" && !k.fromFile
	unused := func(why string) {
		if secret {
			v.warnf(key("client_secret"), "is not used with client_auth %s: remove it", why)
		}
		if k.secretFile != "" {
			v.warnf(key("client_secret_file"), "is not used with client_auth %s: remove it", why)
		}
	}
	switch k.auth {
	case ClientSecretBasic, ClientSecretPost:
	case PrivateKeyJWT:
		if k.keyFile == "" {
			v.errorf(key("private_key_file"), "required with client_auth private_key_jwt: the key registered with the IdP, as PEM or a JWK or JWKS file")
		} else {
			v.keyFile(key("private_key_file"), k.keyFile)
		}
		unused(PrivateKeyJWT)
		return
	case TLSClientAuth, SelfSignedTLSClientAuth:
		if v.c.OIDC.ClientCertificateFile == "" && v.c.OIDC.ClientCertificateKeyFile == "" {
			v.errorf(key("client_auth"), "%s needs the client certificate: set oidc.client_certificate_file and oidc.client_certificate_key_file", k.auth)
		}
		unused(k.auth)
		if k.keyFile != "" {
			v.warnf(key("private_key_file"), "is used only with client_auth private_key_jwt: remove it")
		}
		return
	default:
		v.errorf(key("client_auth"), "%s is not a client authentication method: use client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth or self_signed_tls_client_auth", v.quote(key("client_auth"), k.auth))
		return
	}
	switch {
	case secret && k.secretFile != "":
		v.errorf(key("client_secret_file"), "set either client_secret or client_secret_file, not both: remove one")
	case !secret && k.secretFile == "":
		v.errorf(key("client_secret"), "required: set client_secret (e.g. ${%s}) or client_secret_file, or use client_auth: private_key_jwt", k.envVar)
	}
	if k.keyFile != "" {
		v.warnf(key("private_key_file"), "is used only with client_auth private_key_jwt: remove it")
	}
}

// keyFile checks that a private_key_file can be read and is not empty;
// the server's loader parses it (see clientAuth).
func (v *validator) keyFile(key, file string) {
	f, err := os.Open(file)
	if err != nil {
		v.errorf(key, "cannot read the file: %s", fsReason(err))
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	switch {
	case err != nil:
		v.errorf(key, "cannot read the file: %s", fsReason(err))
	case len(data) > maxKeyFileBytes:
		v.errorf(key, "is larger than %d bytes: a key file holds a PEM key or a JWK or JWKS", maxKeyFileBytes)
	case len(bytes.TrimSpace(data)) == 0:
		v.errorf(key, "is empty: put the PEM private key, or a JWK or JWKS, in it")
	}
}

// clientCertificate checks oidc.client_certificate_file and
// oidc.client_certificate_key_file: both or neither, a certificate and
// its key.
func (v *validator) clientCertificate() {
	o := v.c.OIDC
	const certKey, keyKey = "oidc.client_certificate_file", "oidc.client_certificate_key_file"
	switch {
	case o.ClientCertificateFile != "" && o.ClientCertificateKeyFile != "":
		v.keyPair(certKey, keyKey, o.ClientCertificateFile, o.ClientCertificateKeyFile)
	case o.ClientCertificateFile != "":
		v.errorf(certKey, "needs client_certificate_key_file, the certificate's private key: set both, or neither")
	case o.ClientCertificateKeyFile != "":
		v.errorf(keyKey, "needs client_certificate_file, the client certificate: set both, or neither")
	}
	v.assertionAudience()
}

// assertionAudience checks oidc.client_assertion_audience.
func (v *validator) assertionAudience() {
	o := v.c.OIDC
	const key = "oidc.client_assertion_audience"
	switch o.ClientAssertionAudience {
	case "", "issuer":
	case "endpoint":
		if o.Profile == "fapi2" {
			v.errorf(key, "profile fapi2 requires the issuer as the audience of client assertions: remove client_assertion_audience")
		}
	default:
		v.errorf(key, "%s is not an audience: use issuer (the default) or endpoint", v.quote(key, o.ClientAssertionAudience))
		return
	}
	jwt := o.ClientAuth == PrivateKeyJWT || o.ServiceClient != nil && o.ServiceClient.ClientAuth == PrivateKeyJWT
	if o.ClientAssertionAudience != "" && !jwt {
		v.warnf(key, "is used only with client_auth private_key_jwt: remove it")
	}
}

// lastKey is the last element of a dotted key: "cert_file" of
// "apis[0].tls.cert_file".
func lastKey(key string) string {
	return key[strings.LastIndex(key, ".")+1:]
}
