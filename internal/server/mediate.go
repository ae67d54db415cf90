package server

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/cloakroom/cloakroom/internal/bff"
	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/tokens"
)

// mediation is /bff/token's view of the API routes (the token-mediating
// mode, apis[].mediate). A route's require policy gates its mediated
// tokens as it gates its proxied calls. A mediated token is narrowed by the route's own
// resource (RFC 8707), audience and scopes, as configured: never by its
// upstream URL, which is often an internal address that no provider knows
// as a resource indicator. Without them the provider decides, as for the
// session's own refreshes.
func mediation(cfg *config.Config) bff.Mediation {
	m := bff.Mediation{Routes: make(map[string]bff.TokenRoute, len(cfg.APIs))}
	for _, a := range cfg.APIs {
		r := bff.TokenRoute{
			Mediate: a.Mediate,
			Params:  oidc.TokenParams{Scopes: a.Scopes, Resource: a.Resource, Audience: a.Audience},
		}
		if a.Require != nil {
			r.Require = &tokens.Policy{Scopes: a.Require.Scopes, Claims: a.Require.Claims, Path: a.Require.Path}
		}
		m.Routes[a.Path] = r
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

// limitMediation puts POST to path, where the frontend serves
// bff.TokenPath, behind limit, the API routes' rate limit
// (rate_limit.api_per_second, per session), and leaves every other
// request to next. Each mediation is a refresh_token grant at the
// provider: a session must not turn it into a way around its API budget,
// nor make the gateway hammer the provider, so the two share one budget.
func limitMediation(limit func(http.Handler) http.Handler, path string, next http.Handler) http.Handler {
	limited := limit(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == path {
			limited.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
