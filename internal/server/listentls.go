package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/tlsserve"
)

// newTLS starts the certificate source of cfg's tls section; nil without
// one.
func newTLS(ctx context.Context, cfg *config.Config, log *slog.Logger) (*tlsserve.Server, error) {
	if cfg.TLS == nil {
		return nil, nil
	}
	var acme *tlsserve.ACME
	if a := cfg.TLS.ACME; a != nil {
		acme = &tlsserve.ACME{
			Email: a.Email, CA: a.CA, CARoot: a.CARoot, Storage: a.Storage, AgreeTOS: a.AgreeTOS,
			HTTP01: cfg.TLS.RedirectHTTP != "",
		}
	}
	s, err := tlsserve.New(ctx, tlsserve.Options{
		CertFile: cfg.TLS.CertFile,
		KeyFile:  cfg.TLS.KeyFile,
		ACME:     acme,
		Origins:  origins(cfg),
		Logger:   log,
	})
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return s, nil
}

// origins are the public URLs of cfg's frontends, in order.
func origins(cfg *config.Config) []string {
	var out []string
	for _, a := range cfg.Apps() {
		out = append(out, a.PublicURL)
	}
	return out
}

// sameTLS reports whether a reload leaves the tls section as it was. The
// certificate files' contents are read again on every reload (and when
// they change), but the section itself cannot change live: turning TLS on
// or off, other files, another ACME account or CA, or another
// redirect_http address need a restart.
func sameTLS(a, b *config.Config) bool {
	return reflect.DeepEqual(a.TLS, b.TLS)
}

// sameACMEHosts reports whether a reload keeps the hosts certificates are
// obtained for under tls.acme (always true without it): another host
// needs a restart, which starts managing it.
func sameACMEHosts(a, b *config.Config) bool {
	return a.TLS == nil || a.TLS.ACME == nil || slices.Equal(hosts(a), hosts(b))
}

// hosts are the distinct host names of cfg's frontends, sorted.
func hosts(cfg *config.Config) []string {
	var out []string
	for _, o := range origins(cfg) {
		if u, err := url.Parse(o); err == nil {
			out = append(out, strings.ToLower(u.Hostname()))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
