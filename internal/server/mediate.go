package server

import (
	"net/url"
	"slices"

	"github.com/cloakroom/cloakroom/internal/bff"
	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidc"
)

// mediation is /bff/token's view of the API routes (the token-mediating
// mode, apis[].mediate). A mediated token is narrowed by the route's own
// resource (RFC 8707), audience and scopes, as configured: never by its
// upstream URL, which is often an internal address that no provider knows
// as a resource indicator. Without them the provider decides, as for the
// session's own refreshes.
func mediation(cfg *config.Config) bff.Mediation {
	m := bff.Mediation{Routes: make(map[string]bff.TokenRoute, len(cfg.APIs))}
	for _, a := range cfg.APIs {
		m.Routes[a.Path] = bff.TokenRoute{
			Mediate: a.Mediate,
			Params:  oidc.TokenParams{Scopes: a.Scopes, Resource: a.Resource, Audience: a.Audience},
		}
	}
	return m
}

// mediatedOrigins are the upstream origins of the mediated routes, which
// the SPA calls directly: the default Content-Security-Policy adds them to
// connect-src.
func mediatedOrigins(cfg *config.Config) []string {
	var out []string
	for _, a := range cfg.APIs {
		u, err := url.Parse(a.Upstream)
		if !a.Mediate || err != nil || u.Host == "" {
			continue
		}
		if o := u.Scheme + "://" + u.Host; !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}
