package config

import "net/url"

// par checks oidc.par.
func (v *validator) par() {
	switch p := v.c.OIDC.PAR; p {
	case PARAuto, PARRequired, PAROff:
	default:
		v.errorf("oidc.par", "%s is not a PAR mode: use auto, required or off", v.quote("oidc.par", p))
	}
}

// fapi2 checks oidc.profile and, with fapi2, what the FAPI 2.0 Security
// Profile (final, February 2025) asks of a client that a configuration
// decides; discovery checks the provider's side (internal/oidc/fapi2.go).
// Each violation is reported at the offending key's line, or at
// oidc.profile's when the file leaves that key to its default.
func (v *validator) fapi2() {
	o := &v.c.OIDC
	switch o.Profile {
	case "":
		return
	case ProfileFAPI2:
	default:
		v.errorf("oidc.profile", "%s is not a profile: use fapi2, or remove it", v.quote("oidc.profile", o.Profile))
		return
	}
	at := func(key string) string {
		if v.c.meta == nil || v.fileLine(key) > 0 {
			return key
		}
		return "oidc.profile"
	}
	// §5.3.2.2: pushed authorization requests. auto is required under the
	// profile.
	if o.PAR == PAROff {
		v.errorf("oidc.par", "off is not allowed with profile fapi2, which requires pushed authorization requests (RFC 9126): use required or auto")
	}
	// §5.3.2.1: private_key_jwt or mTLS client authentication.
	mtls := o.ClientAuth == TLSClientAuth || o.ClientAuth == SelfSignedTLSClientAuth
	if o.ClientAuth != PrivateKeyJWT && !mtls {
		v.errorf(at("oidc.client_auth"), "profile fapi2 requires client_auth private_key_jwt, tls_client_auth or self_signed_tls_client_auth, not %s", v.quote("oidc.client_auth", o.ClientAuth))
	}
	if sc := o.ServiceClient; sc != nil && sc.ClientAuth != PrivateKeyJWT && sc.ClientAuth != TLSClientAuth && sc.ClientAuth != SelfSignedTLSClientAuth {
		key := "oidc.service_client.client_auth"
		if v.c.meta != nil && v.fileLine(key) == 0 {
			key = "oidc.service_client"
		}
		auth := sc.ClientAuth
		if auth == "" {
			auth = ClientSecretBasic
		}
		v.errorf(key, "profile fapi2 requires client_auth private_key_jwt, tls_client_auth or self_signed_tls_client_auth for the service client too, not %s", v.quote(key, auth))
	}
	// §5.3.2.1: sender-constrained access tokens, DPoP or certificate-bound
	// (a client certificate, presented to the provider whatever the client
	// authentication, binds them).
	if !o.DPoP && !mtls && o.ClientCertificateFile == "" {
		v.errorf(at("oidc.dpop"), "profile fapi2 requires sender-constrained tokens: set oidc.dpop: true, or set client_certificate_file for certificate-bound tokens (RFC 8705)")
	}
	// §5.2.2: TLS on every connection. Plain http is accepted at all only
	// for localhost (see oidc and publicURL): a warning, for development.
	for _, key := range []string{"oidc.issuer", "public_url"} {
		s := o.Issuer
		if key == "public_url" {
			s = v.c.PublicURL
		}
		if u, err := url.Parse(s); err == nil && u.Scheme == "http" && isLocalhost(u.Hostname()) {
			v.warnf(key, "uses plain http, which profile fapi2 does not allow (TLS on every connection): use https outside development")
		}
	}
}
