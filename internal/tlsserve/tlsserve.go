// Package tlsserve is the gateway's own HTTPS: the *tls.Config of the
// listener (TLS 1.2 or later, Go's default cipher suites and curves, ALPN
// h2 and http/1.1), the certificates it serves, and the plain HTTP
// listener of tls.redirect_http that only redirects to https.
//
// Certificates come from a source, an unexported interface met by one
// struct per kind:
//
//   - static.go: cert_file and key_file, read at New, again by Reload
//     (SIGHUP) and whenever either file changes (polled), swapped
//     atomically; a pair that does not load keeps the one served.
//   - acme.go: tls.acme, certificates obtained and renewed through an ACME
//     CA.
//
// A source plugs in by meeting source and being chosen in New from
// Options; everything else (the tls.Config, the redirect listener, the
// wiring in internal/server) is the same for every source. Its
// GetCertificate answers every handshake, including those of the ALPN
// protocols it adds through nextProtos (acme-tls/1 for TLS-ALPN-01);
// httpHandler wraps the redirect listener's handler (HTTP-01 challenges
// answered before the redirect); reload is what SIGHUP does; close stops
// its goroutines.
//
// Like every package below internal/server, it does not import config:
// internal/server turns the tls section into Options.
package tlsserve

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// source provides the listener's certificates.
type source interface {
	// GetCertificate returns the certificate for a handshake; it is
	// tls.Config.GetCertificate.
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// nextProtos are ALPN protocols the source answers in GetCertificate,
	// offered after h2 and http/1.1 (acme-tls/1), or nil.
	nextProtos() []string
	// httpHandler wraps the redirect listener's handler, e.g. to answer
	// ACME HTTP-01 challenges before next redirects; or returns next.
	httpHandler(next http.Handler) http.Handler
	// reload re-reads what the source serves (SIGHUP). An error leaves
	// the certificate served as it was.
	reload() error
	// close stops the source's goroutines.
	close() error
}

// Options are the tls section (as internal/server reads it) and what the
// gateway knows besides.
type Options struct {
	// CertFile and KeyFile are tls.cert_file and tls.key_file.
	CertFile, KeyFile string

	// ACME, when set, obtains and renews certificates for the hosts of
	// Origins instead (tls.acme; see acme.go).
	ACME *ACME

	// Origins are the public URLs of the gateway's frontends
	// (scheme://host[:port]), the first one first: the redirect listener
	// redirects to them, and their hosts (Options.hosts) are the names
	// certificates are for.
	Origins []string
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// hosts are the distinct host names of Origins, in order.
func (o Options) hosts() []string {
	var out []string
	for _, s := range o.Origins {
		u, err := url.Parse(s)
		if err != nil || u.Hostname() == "" {
			continue
		}
		if h := strings.ToLower(u.Hostname()); !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// Server is the HTTPS side of the gateway: it makes TLS listeners and the
// redirect server, and keeps their certificates current until Close.
type Server struct {
	src      source
	log      *slog.Logger
	redirect *redirect
	cfg      *tls.Config
	once     sync.Once
}

// New starts the certificate source o describes: it fails when the
// certificate cannot be loaded now. Its background work (watching files,
// renewing) ends with ctx or Close.
func New(ctx context.Context, o Options) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var src source
	var err error
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		src, err = newStatic(ctx, o.CertFile, o.KeyFile, log)
	case o.ACME != nil:
		src, err = newACME(ctx, *o.ACME, o.hosts(), log)
	default:
		err = errors.New("no certificate source: set cert_file and key_file, or acme")
	}
	if err != nil {
		return nil, err
	}
	s := &Server{src: src, log: log, redirect: newRedirect(o.Origins)}
	s.cfg = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// h2 first: the http.Server given a listener of NewListener
		// speaks HTTP/2 when the client agrees to it.
		NextProtos:     append([]string{"h2", "http/1.1"}, src.nextProtos()...),
		GetCertificate: src.GetCertificate,
	}
	return s, nil
}

// TLSConfig is the listener's configuration. The caller must not change
// it.
func (s *Server) TLSConfig() *tls.Config { return s.cfg }

// NewListener wraps ln, a TCP listener, in TLS.
func (s *Server) NewListener(ln net.Listener) net.Listener {
	return tls.NewListener(ln, s.cfg)
}

// Reload re-reads the certificates now (SIGHUP). On error the served
// certificate stays; the error is also logged.
func (s *Server) Reload() error {
	return s.src.reload()
}

// SetOrigins replaces Options.Origins for the redirect listener (a
// configuration reload that changed public_url or the frontends).
func (s *Server) SetOrigins(origins []string) {
	s.redirect.set(origins)
}

// Close stops the certificate source's background work.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() { err = s.src.close() })
	return err
}
