package config

import (
	"net/netip"
	"net/url"
	"os"
	"strings"
)

// acme checks tls.acme: the terms of service agreed to, a storage
// directory, an https directory URL, a CA root file that parses, and a
// public_url whose host a CA can validate (every frontend's). It warns
// without an email address.
func (v *validator) acme() {
	a := v.c.TLS.ACME
	const key = "tls.acme"
	if !a.AgreeTOS {
		v.errorf(key+".agree_tos", "must be true: an ACME CA issues certificates only to accounts that agree to its terms of service (Let's Encrypt's: https://letsencrypt.org/repository/); read them and set agree_tos: true")
	}
	switch st, err := os.Stat(a.Storage); {
	case a.Storage == "":
		v.errorf(key+".storage", "required: the directory for the ACME account, the certificates and their keys, e.g. /var/lib/cloakroom/acme (share it between instances)")
	case err == nil && !st.IsDir():
		v.errorf(key+".storage", "%s is not a directory: name a directory (it is made when missing)", v.quote(key+".storage", a.Storage))
	}
	if a.Email == "" {
		v.warnf(key+".email", "is not set: the CA has no address to write to about expiring certificates or problems; set an operations address")
	} else if at := strings.IndexByte(a.Email, '@'); at < 1 || at == len(a.Email)-1 || strings.ContainsAny(a.Email, " \t<>") {
		v.errorf(key+".email", "%s is not an email address: write e.g. ops@example.com", v.quote(key+".email", a.Email))
	}
	if a.CA != "" {
		if u, ok := v.httpURL(key+".ca", a.CA, "https://acme-v02.api.letsencrypt.org/directory"); ok && u.Scheme == "http" && !isLocalhost(u.Hostname()) {
			v.errorf(key+".ca", msgPlainHTTP)
		}
	}
	if a.CARoot != "" {
		v.caFile(key+".ca_root", a.CARoot)
	}
	for _, p := range v.c.publicURLs() {
		u, err := url.Parse(p.url)
		if err != nil || u.Hostname() == "" {
			continue // public_url's own check says why
		}
		h := u.Hostname()
		if _, err := netip.ParseAddr(h); err == nil || isLocalhost(h) {
			v.errorf(key, "cannot get a certificate for %s, the host of %s: an ACME CA validates only DNS names that reach this gateway, never localhost or an IP address; use cert_file and key_file, or a public host name", h, p.key)
		}
	}
}
