package server

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/internal/aggregate"
	"github.com/cloakroom/cloakroom/internal/bff"
	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/csrf"
	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/proxy"
	"github.com/cloakroom/cloakroom/internal/ratelimit"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/spa"
	"github.com/cloakroom/cloakroom/internal/tokens"
)

// frontendConfig is one frontend as configured: its name, its base path
// and the effective settings it is built from (public_url, oidc, session,
// frontend, cors, csrf, rate_limit, apis, composites).
type frontendConfig struct {
	name       string
	path       string // "/" or "/admin/"
	cookiePath string
	inner      []string // longer paths of other frontends on the same origin
	cfg        *config.Config
	// at is the file's key of a key of cfg (config.Config.AppKey): the
	// entry's or the top level's, for problems found while building.
	at func(key string) string
}

// frontend is one SPA's handler tree: its provider client, its sessions,
// its routes and its own edge (CORS, CSRF header, CSP, rate limits).
type frontend struct {
	name string
	host string // public_url's host[:port], lower case
	path string
	// prefix is path without its final slash: "" or "/admin".
	prefix string

	oidc     *oidc.Client
	sessions *session.Manager
	tokens   *tokens.Source
	// handler serves the requests matched to this frontend.
	handler http.Handler
	idle    idleClosers

	sh       *shared
	cfg      *config.Config
	pub      *url.URL // public_url without its path
	origin   string
	creds    *clientCredentials
	dpop     dpopWiring
	check    *csrf.Checker
	apiLimit limiter // see ratelimit.go
}

// frontend builds one frontend: its provider client and sessions, then
// its routes (/bff/*, APIs, composites, the SPA), then its edge.
func (sh *shared) frontend(fc frontendConfig) (*frontend, error) {
	cfg := fc.cfg
	pub, err := url.Parse(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("public_url: %w", err)
	}
	pub.Path = ""
	creds, problems := loadClientCredentials(cfg, fc.at) // see clientauth.go
	if len(problems) > 0 {
		return nil, problemsError(problems)
	}
	f := &frontend{
		name: fc.name, host: strings.ToLower(pub.Host), path: fc.path, prefix: strings.TrimSuffix(fc.path, "/"),
		sh: sh, cfg: cfg, pub: pub, origin: pub.Scheme + "://" + pub.Host, creds: creds, dpop: sh.dpopFor(cfg),
	}
	f.oidc = sh.provider(cfg, pub, creds, f.dpop)
	if f.sessions, err = sh.sessions(fc, f.oidc); err != nil {
		return nil, err
	}
	f.check = csrf.New(cfg.CSRF.Header, cfg.CSRF.Value)
	f.check.OnReject = func() { sh.met.Frontend(f.name).Rejection("csrf") }
	f.tokens = f.tokenSource()
	if n := cfg.RateLimit.APIPerSecond; n > 0 {
		if f.apiLimit, err = f.limiter("api", float64(n), 2*n); err != nil {
			return nil, err
		}
	}

	mux := http.NewServeMux()
	// /bff/ belongs to the gateway: what it does not answer is 404, never
	// the SPA or a dev server.
	mux.Handle(f.path+"bff/", http.NotFoundHandler())
	f.bff(mux, fc.inner)
	routes, apiPrefixes, err := f.apis(mux)
	if err != nil {
		return nil, err
	}
	if err := f.composites(mux, routes); err != nil {
		return nil, err
	}
	if err := f.spa(mux, apiPrefixes); err != nil {
		return nil, err
	}
	if f.handler, err = f.edge(mux); err != nil {
		return nil, err
	}
	return f, nil
}

// tokenSource hands out the frontend's tokens: its users' through its own
// client, client-credentials and exchanged ones through the service client
// when one is configured. Their cache is the gateway's (shared.tokenCache,
// one per build, as the oidc.Provider of each issuer), keyed by issuer,
// client ID, client certificate, DPoP key and token parameters (see
// tokens.Cache): frontends with the same service client at the same
// provider fetch each such token once between them, and frontends of
// other clients, keys or providers never get each other's tokens. Refresh
// backoffs stay per frontend, with its sessions.
func (f *frontend) tokenSource() *tokens.Source {
	cfg, sh := f.cfg, f.sh
	service := f.oidc
	if sc := cfg.OIDC.ServiceClient; sc != nil {
		service = f.oidc.WithCredentials(oidc.Credentials{ClientID: sc.ClientID, ClientSecret: sc.ClientSecret, ClientAuth: sc.ClientAuth, SigningKeys: f.creds.service})
	}
	return tokens.New(tokens.Options{
		Sessions:      f.sessions,
		OIDC:          f.oidc,
		Service:       service,
		Locker:        sh.locker,
		RefreshBefore: cfg.Session.RefreshBefore,
		RefreshParams: oidc.TokenParams{Resource: cfg.OIDC.AuthParams["resource"], Audience: cfg.OIDC.AuthParams["audience"]},
		OnRefresh:     sh.met.Frontend(f.name).Refresh,
		Tracer:        sh.tr.tracer(),
		DPoP:          f.dpop.key,
		Cache:         sh.tokenCache,
		Logger:        sh.log,
		Now:           sh.o.Now,
	})
}

// bff registers /bff/* and /bff/jwks.
func (f *frontend) bff(mux *http.ServeMux, inner []string) {
	sh := f.sh
	var allow func(string) bool
	if len(inner) > 0 {
		allow = func(p string) bool {
			return !slices.ContainsFunc(inner, func(in string) bool { return underPath(p, in) })
		}
	}
	bff.New(bff.Options{
		Sessions: f.sessions, OIDC: f.oidc, Tokens: f.tokens, CSRF: f.check,
		CallbackPath: f.cfg.OIDC.CallbackPath, PublicOrigin: f.origin,
		Locker: sh.locker, Replay: sh.replay, Events: sh.met.Frontend(f.name), Logger: sh.log, DPoP: f.cfg.OIDC.DPoP,
		Mediation: mediation(f.cfg), BasePath: f.path, ReturnAllowed: allow,
	}).Register(mux, named)
	mux.Handle("GET "+f.prefix+bff.JWKSPath, named("bff_jwks", bff.JWKS(f.creds.jwks)))
}

// apiRoute is what a composite part naming an API route takes from it.
type apiRoute struct {
	upstream  *url.URL
	bearer    *tokens.Route
	transport http.RoundTripper // with the route's TLS; nil: the composite's
}

// apis registers the API routes. It returns them by path, for composite
// parts, and the literal prefixes under which no SPA fallback answers.
func (f *frontend) apis(mux *http.ServeMux) (map[string]apiRoute, []string, error) {
	sh := f.sh
	popts := proxy.Options{
		PublicURL:      f.pub,
		CSRFHeader:     f.check.Header(),
		SessionCookie:  f.sessions.CookieName(),
		TrustedProxies: sh.trusted,
		OnUpstream:     sh.met.Frontend(f.name).Upstream,
		WrapTransport:  sh.tr.transport,
		DPoP:           f.dpop.proxyNonces(),
		Now:            sh.o.Now,
		Logger:         sh.log,
	}
	routes := map[string]apiRoute{}
	var prefixes []string
	for _, a := range f.cfg.APIs {
		up, err := url.Parse(a.Upstream)
		if err != nil {
			return nil, nil, fmt.Errorf("apis %q: upstream: %w", a.Path, err)
		}
		ro := tokens.RouteOptions{Mode: tokens.Mode(a.Token), Scopes: a.Scopes, Resource: a.Resource, Audience: a.Audience}
		if a.Require != nil {
			ro.Require = &tokens.Policy{Scopes: a.Require.Scopes, Claims: a.Require.Claims, Path: a.Require.Path}
		}
		bearer, err := f.tokens.Route(ro)
		if err != nil {
			return nil, nil, fmt.Errorf("apis %q: %w", a.Path, err)
		}
		tlsConf, err := upstreamTLS(a, f.creds.cert)
		if err != nil {
			return nil, nil, err
		}
		route := apiRoute{upstream: up, bearer: bearer}
		if tlsConf != nil {
			pt := partTransport(tlsConf)
			f.idle.add(pt)
			route.transport = sh.tr.transport(pt)
		}
		routes[a.Path] = route
		var h http.Handler = proxy.New(proxy.Route{
			Prefix: a.Path, Upstream: up, Bearer: bearer, Timeout: a.Timeout,
			Methods: a.Methods, MaxBodyBytes: int64(a.MaxBodyBytes), TLS: tlsConf,
		}, popts)
		f.idle.add(h)
		h = f.limitAPI(h)
		if err := handle(mux, a.Path, named(a.Path, f.check.RequireAPI(f.origin, a.AllowHeaderless, h))); err != nil {
			return nil, nil, fmt.Errorf("apis %q: %w", a.Path, err)
		}
		literal, _, _ := strings.Cut(a.Path, "{") // no SPA fallback under any API route
		prefixes = append(prefixes, literal)
	}
	return routes, prefixes, nil
}

// limitAPI applies rate_limit.api_per_second: per session, anonymous
// calls per client IP.
func (f *frontend) limitAPI(h http.Handler) http.Handler {
	if f.apiLimit == nil {
		return h
	}
	sessions, ip := f.sessions, f.sh.ip
	return ratelimit.Middleware(f.apiLimit, func(r *http.Request) string {
		if t := sessions.Ticket(r); t != "" {
			return "s\x00" + t
		}
		return "ip\x00" + ip(r)
	}, h)
}

// composites registers the composite routes; routes are the API routes
// their parts may name.
func (f *frontend) composites(mux *http.ServeMux, routes map[string]apiRoute) error {
	sh := f.sh
	claims := func(r *http.Request) map[string]any {
		s, err := f.sessions.Load(r)
		if err != nil {
			return nil
		}
		return s.Claims
	}
	for _, c := range f.cfg.Composites {
		comp := aggregate.Composite{Path: c.Path, DefaultProfile: c.DefaultProfile, Deadline: c.Deadline, Profiles: map[string]aggregate.Profile{}}
		for name, p := range c.Profiles {
			comp.Profiles[name] = aggregate.Profile{Allow: p.Allow, Deny: p.Deny, Map: p.Map}
		}
		for _, name := range slices.Sorted(maps.Keys(c.Parts)) {
			p := c.Parts[name]
			part := aggregate.Part{Name: name, Path: p.Path, Required: p.Required, Timeout: p.Timeout}
			if p.API != "" {
				rt, ok := routes[p.API]
				if !ok {
					return fmt.Errorf("composites %q: part %q: no API %q", c.Path, name, p.API)
				}
				part.Upstream, part.Bearer, part.Transport = rt.upstream, rt.bearer, rt.transport
			} else {
				var err error
				if part.Upstream, err = url.Parse(p.Upstream); err != nil {
					return fmt.Errorf("composites %q: part %q: %w", c.Path, name, err)
				}
				if part.Bearer, err = f.tokens.Route(tokens.RouteOptions{Mode: tokens.Mode(p.Token)}); err != nil {
					return fmt.Errorf("composites %q: part %q: %w", c.Path, name, err)
				}
			}
			comp.Parts = append(comp.Parts, part)
		}
		ct := aggregate.NewTransport(30 * time.Second)
		f.idle.add(ct)
		h, err := aggregate.New(comp, aggregate.Options{
			Claims: claims, Transport: sh.tr.transport(ct), Logger: sh.log,
			DPoP: f.dpop.partNonces(), Now: sh.o.Now,
		})
		if err != nil {
			return fmt.Errorf("composites %q: %w", c.Path, err)
		}
		if c.Require != nil {
			gate, err := f.tokens.Route(tokens.RouteOptions{Mode: tokens.UserOrNone, Require: &tokens.Policy{Scopes: c.Require.Scopes, Claims: c.Require.Claims, Path: c.Require.Path}})
			if err != nil {
				return err
			}
			h = requirePolicy(gate, sh.log, h)
		}
		h = f.limitAPI(h)
		if err := handle(mux, "GET "+c.Path, named(c.Path, f.check.RequireAPI(f.origin, false, h))); err != nil {
			return fmt.Errorf("composites %q: %w", c.Path, err)
		}
	}
	return nil
}

// spa registers the frontend's files (or its dev server) with its
// Content-Security-Policy; nothing when it has none.
func (f *frontend) spa(mux *http.ServeMux, apiPrefixes []string) error {
	cfg := f.cfg
	// The default policy lets the SPA frame the provider, which a silent
	// login's hidden iframe passes through on its way back to us.
	csp := cfg.Frontend.CSP
	if csp == "" {
		csp = spa.DefaultCSP
		if iss, err := url.Parse(cfg.OIDC.Issuer); err == nil && iss.Host != "" {
			csp += "; frame-src 'self' " + iss.Scheme + "://" + iss.Host
		}
		csp = spa.AddConnectSources(csp, mediatedOrigins(cfg)...)
	}
	// The SPA sees paths as if it were at "/": its fallback stays inside
	// the frontend's path.
	for i, p := range apiPrefixes {
		apiPrefixes[i] = strings.TrimPrefix(p, f.prefix)
	}
	var h http.Handler
	switch {
	case f.sh.o.Files[f.name] != nil:
		h = spa.NewFiles(f.sh.o.Files[f.name], apiPrefixes...).WithCSP(csp)
	case f.sh.o.Frontend != nil:
		h = spa.NewFiles(f.sh.o.Frontend, apiPrefixes...).WithCSP(csp)
	case cfg.Frontend.DevServer != "":
		u, err := url.Parse(cfg.Frontend.DevServer)
		if err != nil {
			return fmt.Errorf("frontend.dev_server: %w", err)
		}
		h = spa.DevServer(u)
	case cfg.Frontend.Dir != "":
		h = spa.NewFiles(os.DirFS(cfg.Frontend.Dir), apiPrefixes...).WithCSP(csp)
	default:
		return nil
	}
	if f.prefix != "" {
		h = http.StripPrefix(f.prefix, h)
	}
	mux.Handle(f.path, named("spa", h))
	return nil
}

// edge wraps the frontend's routes in what every one of its requests
// passes: security headers, CORS, cross-origin protection, the login rate
// limit and the session cookie's refresh.
func (f *frontend) edge(mux http.Handler) (http.Handler, error) {
	cfg := f.cfg
	h := f.sessions.Middleware(limitMediation(f.limitAPI, f.prefix+bff.TokenPath, mux))
	if n := cfg.RateLimit.LoginPerMinute; n > 0 {
		l, err := f.limiter("login", float64(n)/60, n)
		if err != nil {
			return nil, err
		}
		h = limitPaths(l, f.sh.ip, []string{f.prefix + bff.LoginPath, cfg.OIDC.CallbackPath}, h)
	}
	h, err := csrf.CrossOrigin(cfg.CORS.AllowedOrigins, h)
	if err != nil {
		return nil, fmt.Errorf("cors.allowed_origins: %w", err)
	}
	h = csrf.CORS(cfg.CORS.AllowedOrigins, f.check.Header(), h)
	return csrf.SecurityHeaders(f.pub.Scheme == "https", h), nil
}

// ready is the frontend's /readyz check: its provider discovered.
func (f *frontend) ready(context.Context) error {
	if !f.oidc.Ready() {
		return errDiscovery
	}
	return nil
}

// frontendSet matches each request to its frontend: by Host (the host and
// port of each public_url), then the longest path. Matching allocates
// nothing: it runs on every request.
type frontendSet struct {
	list   []*frontend
	byHost map[string][]*frontend // longest path first
}

func newFrontendSet(list []*frontend) *frontendSet {
	s := &frontendSet{list: list, byHost: map[string][]*frontend{}}
	for _, f := range list {
		for _, h := range hostNames(f.host) {
			s.byHost[h] = append(s.byHost[h], f)
		}
	}
	for _, fs := range s.byHost {
		slices.SortStableFunc(fs, func(a, b *frontend) int { return len(b.path) - len(a.path) })
	}
	return s
}

// hostNames are the Host values that name host: itself and, when it ends
// in an empty port ("example.com:"), the name without it.
func hostNames(host string) []string {
	names := []string{host}
	if h, p, err := net.SplitHostPort(host); err == nil && p == "" {
		names = append(names, h)
	}
	return names
}

// match returns r's frontend. ok is false when r's Host names no
// frontend (a DNS rebinding page, say); f is nil when the host is known
// but no frontend's path holds r's path.
func (s *frontendSet) match(r *http.Request) (f *frontend, ok bool) {
	fs, ok := s.byHost[r.Host]
	if !ok {
		fs, ok = s.byHost[strings.ToLower(r.Host)]
	}
	for _, f := range fs {
		if underPath(r.URL.Path, f.path) {
			return f, true
		}
	}
	return nil, ok
}

// underPath reports whether p lies under base ("/" or "/admin/"); the base
// without its final slash ("/admin") counts.
func underPath(p, base string) bool {
	return strings.HasPrefix(p, base) || len(p) == len(base)-1 && strings.HasPrefix(base, p)
}

// serve has f, r's match, serve r: 421 for a host of no frontend (so a
// DNS rebinding page cannot talk to the gateway under its own name), 404
// for a path of none.
func (s *frontendSet) serve(w http.ResponseWriter, r *http.Request, f *frontend, known bool) {
	switch {
	case !known:
		httpx.Problem(w, http.StatusMisdirectedRequest, "unknown host")
	case f == nil:
		http.NotFound(w, r)
	default:
		f.handler.ServeHTTP(w, r)
	}
}

// closeIdle closes the idle upstream connections of every frontend.
func (s *frontendSet) closeIdle() {
	for _, f := range s.list {
		f.idle.closeIdle()
	}
}
