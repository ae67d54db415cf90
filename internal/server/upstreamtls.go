package server

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/internal/aggregate"
	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/proxy"
)

// upstreamTLS reads the files of an API route's tls settings; nil when it
// has none. Every build of the gateway reads them again: that is how a
// reload (SIGHUP) takes up a renewed certificate, and a file that no longer
// loads makes the reload fail, so the running configuration stays.
//
// cert is the gateway's client certificate (oidc.client_certificate_file),
// or nil. A route with an https upstream and no cert_file of its own
// presents it, so that an API receiving tokens bound to that certificate
// (RFC 8705 §3) sees it on the connection; apis[].tls.cert_file, when set,
// wins.
func upstreamTLS(a config.API, cert *tls.Certificate) (*tls.Config, error) {
	bound := cert != nil && strings.HasPrefix(a.Upstream, "https://") && (a.TLS == nil || a.TLS.CertFile == "")
	if a.TLS == nil && !bound {
		return nil, nil
	}
	var f proxy.TLSFiles
	if a.TLS != nil {
		f = proxy.TLSFiles{CAFile: a.TLS.CAFile, CertFile: a.TLS.CertFile, KeyFile: a.TLS.KeyFile, ServerName: a.TLS.ServerName}
	}
	c, err := proxy.LoadTLS(f)
	if err != nil {
		return nil, fmt.Errorf("apis %q: tls: %w", a.Path, err)
	}
	if bound {
		// As LoadTLS hands out its own: whenever the upstream asks.
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return c, nil
}

// partTransport is the transport of composite parts that name an API route
// with tls settings: the composites' transport with the route's TLS.
func partTransport(c *tls.Config) *http.Transport {
	t := aggregate.NewTransport(30 * time.Second)
	t.TLSClientConfig = c.Clone() // the transport adds its ALPN protocols to it
	return t
}

// idleClosers are the upstream transports of one build of the gateway.
type idleClosers []interface{ CloseIdleConnections() }

// add keeps h when it can close idle connections (proxy handlers,
// transports).
func (c *idleClosers) add(h any) {
	if ic, ok := h.(interface{ CloseIdleConnections() }); ok {
		*c = append(*c, ic)
	}
}

// closeIdle closes the idle upstream connections of a build a reload
// replaced: none of them will be used again, and those of a route with a
// client certificate were opened with the old one. Connections of
// requests still in flight become idle afterwards and are closed by the
// transports' idle timeout (90s).
func (c idleClosers) closeIdle() {
	for _, ic := range c {
		ic.CloseIdleConnections()
	}
}
