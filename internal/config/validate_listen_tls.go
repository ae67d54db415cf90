package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// hasACME reports whether the tls section asks for certificates from an
// ACME CA (tls.acme).
func (t *TLS) hasACME() bool { return t.ACME != nil }

// listenTLS checks the tls section: one certificate source (cert_file with
// key_file, or acme), files that load as a certificate and its key, an
// https public_url for every frontend, and a redirect_http address of its
// own. No message shows a file's contents.
func (v *validator) listenTLS() {
	c := v.c
	t := c.TLS
	if t == nil {
		if c.meta != nil && c.meta.lines["tls"] > 0 {
			v.errorf("tls", "is empty: set cert_file and key_file, or remove tls to serve plain http")
		}
		return
	}
	files := t.CertFile != "" || t.KeyFile != ""
	switch {
	case files && t.hasACME():
		v.errorf("tls", "sets both cert_file/key_file and acme: the certificate comes from files or from ACME, remove one")
	case !files && !t.hasACME() && t.RedirectHTTP != "":
		v.errorf("tls", "sets only redirect_http: it redirects to the https listener, which needs cert_file and key_file")
	case !files && !t.hasACME():
		v.errorf("tls", "sets no certificate: set cert_file and key_file, or remove tls to serve plain http")
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		v.serverKeyPair(t.CertFile, t.KeyFile)
	case t.CertFile != "":
		v.errorf("tls.cert_file", "needs key_file, the certificate's private key: set both, or neither")
	case t.KeyFile != "":
		v.errorf("tls.key_file", "needs cert_file, the server certificate: set both, or neither")
	}
	for _, p := range c.publicURLs() {
		// Plain http elsewhere than localhost is refused whatever tls says.
		if u, err := url.Parse(p.url); err == nil && u.Scheme == "http" && isLocalhost(u.Hostname()) {
			v.errorf(p.key, "is http, but tls makes the gateway serve https: write https://%s", u.Host)
		}
	}
	if t.RedirectHTTP != "" {
		v.redirectHTTP(t.RedirectHTTP)
	}
	if t.hasACME() {
		v.acme() // see validate_acme.go
	}
}

// keyedURL is a frontend's public_url and its key.
type keyedURL struct{ key, url string }

// publicURLs are the public_url of every frontend, in order.
func (c *Config) publicURLs() []keyedURL {
	if !c.hasFrontends() {
		return []keyedURL{{"public_url", c.PublicURL}}
	}
	var out []keyedURL
	for i, f := range c.Frontends {
		out = append(out, keyedURL{fmt.Sprintf("frontends[%d].public_url", i), f.PublicURL})
	}
	return out
}

func (v *validator) redirectHTTP(addr string) {
	const key = "tls.redirect_http"
	if _, ok := v.hostPort(key, addr); !ok {
		return
	}
	for _, other := range []struct{ key, addr string }{{"listen", v.c.Listen}, {"admin_listen", v.c.AdminListen}} {
		if other.addr != "" && sameAddress(addr, other.addr) {
			v.errorf(key, "is the address of %s: give it its own port, e.g. :80", other.key)
		}
	}
}

// sameAddress reports whether two host:port addresses would take the same
// port: the same port, on the same host or on all of them.
func sameAddress(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	all := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return strings.EqualFold(ha, hb) || all(ha) || all(hb)
}

// serverKeyPair checks that tls.cert_file and tls.key_file are a server
// certificate and its key, and warns when the certificate has expired or
// does not hold a frontend's host.
func (v *validator) serverKeyPair(certFile, keyFile string) {
	const certKey, keyKey = "tls.cert_file", "tls.key_file"
	leaf := v.loadKeyPair(certKey, keyKey, certFile, keyFile, "server")
	if leaf == nil {
		return
	}
	if exp := leaf.NotAfter; time.Now().After(exp) {
		v.warnf(certKey, "the certificate expired on %s: browsers will refuse it; renew it", exp.UTC().Format(time.DateOnly))
	}
	for _, p := range v.c.publicURLs() {
		u, err := url.Parse(p.url)
		if err != nil || u.Hostname() == "" {
			continue
		}
		if leaf.VerifyHostname(u.Hostname()) != nil {
			v.warnf(certKey, "the certificate is not for %s, the host of %s: browsers will refuse it; get one that names it", u.Hostname(), p.key)
		}
	}
}
