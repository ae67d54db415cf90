package server

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/cloakroom/cloakroom/internal/aggregate"
	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/proxy"
)

// upstreamTLS reads the files of an API route's tls settings; nil when it
// has none. Every build of the gateway reads them again: that is how a
// reload (SIGHUP) takes up a renewed certificate, and a file that no longer
// loads makes the reload fail, so the running configuration stays.
func upstreamTLS(a config.API) (*tls.Config, error) {
	if a.TLS == nil {
		return nil, nil
	}
	c, err := proxy.LoadTLS(proxy.TLSFiles{CAFile: a.TLS.CAFile, CertFile: a.TLS.CertFile, KeyFile: a.TLS.KeyFile, ServerName: a.TLS.ServerName})
	if err != nil {
		return nil, fmt.Errorf("apis %q: tls: %w", a.Path, err)
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
