// Package server is the only place that wires Cloakroom together: it
// builds every component from a validated config, orders the middleware
// chain, and owns the http.Server and its shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloakroom/cloakroom/internal/admin"
	"github.com/cloakroom/cloakroom/internal/aggregate"
	"github.com/cloakroom/cloakroom/internal/bff"
	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/csrf"
	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/metrics"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/proxy"
	"github.com/cloakroom/cloakroom/internal/ratelimit"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/filestore"
	"github.com/cloakroom/cloakroom/internal/session/memstore"
	"github.com/cloakroom/cloakroom/internal/session/redisstore"
	"github.com/cloakroom/cloakroom/internal/spa"
	"github.com/cloakroom/cloakroom/internal/tokens"
	"go.opentelemetry.io/otel/trace"
)

// Options are what a config file cannot say.
type Options struct {
	Logger *slog.Logger
	// Listener, when set, is used instead of listening on cfg.Listen.
	Listener net.Listener
	// Frontend, when set, replaces frontend.dir (the demo's embedded SPA).
	Frontend fs.FS
	// Now defaults to time.Now.
	Now func() time.Time
	// HTTPClient for the identity provider; default oidc.NewHTTPClient.
	HTTPClient *http.Client
	// AdminListener, when set, is used instead of listening on
	// cfg.AdminListen.
	AdminListener net.Listener
	// Metrics defaults to a fresh registry.
	Metrics *metrics.Metrics
	// AccessLog, when set, receives the access-log lines (at log level
	// info or below, as Logger decides) encoded directly, one Write per
	// line, in the JSON shape of slog's handler; it should be the stream
	// Logger writes to. When nil, access-log lines go through Logger.
	AccessLog io.Writer
	// TracerProvider, when set, receives the spans; otherwise the standard
	// OTEL_* environment decides (see newTracing).
	TracerProvider trace.TracerProvider
	// Reload, when it delivers, makes Run re-read the configuration with
	// LoadConfig and swap routes, upstreams (the files of their tls
	// settings read again), composites, policies and CSP in place, without
	// dropping sessions or in-flight requests. A config that fails to load
	// (a tls file that does not parse), changes what cannot change live
	// (listen addresses, the session store) or cannot reach its provider
	// is refused, and the old one keeps serving.
	Reload     <-chan struct{}
	LoadConfig func() (*config.Config, error)
	// DrainTimeout bounds how long a shutdown waits for in-flight
	// requests, long streams included. Default 30s.
	DrainTimeout time.Duration

	store   session.Store // set by Run: shared by every rebuild
	tracing *tracing
}

// Server is a built gateway.
type Server struct {
	Handler http.Handler
	// Admin serves /healthz, /readyz and the session admin API.
	Admin   http.Handler
	OIDC    *oidc.Client
	store   session.Store
	log     *slog.Logger
	tracing *tracing
	idle    idleClosers // upstream transports, closed when a reload replaces this build
}

// New builds the gateway from cfg. It starts nothing.
func New(cfg *config.Config, o Options) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met := o.Metrics
	if met == nil {
		met = metrics.New()
	}
	tr := o.tracing
	if tr == nil {
		var err error
		if tr, err = newTracing(o.TracerProvider); err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
	}
	pub, err := url.Parse(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("public_url: %w", err)
	}
	pub.Path = ""
	creds, problems := loadClientCredentials(cfg) // see clientauth.go
	if len(problems) > 0 {
		return nil, problemsError(problems)
	}
	store, cookieMode := o.store, cfg.Session.Store == "cookie"
	if store == nil && !cookieMode {
		if store, err = openStore(cfg.Session, o.Now, log); err != nil {
			return nil, err
		}
	}
	sameSite := http.SameSiteStrictMode
	if strings.EqualFold(cfg.Session.SameSite, "lax") {
		sameSite = http.SameSiteLaxMode
	}
	dpop, err := newDPoP(cfg) // see dpop.go
	if err != nil {
		return nil, err
	}
	var oc *oidc.Client
	revoke := func(s *session.Session) {
		if s.RefreshToken == "" || oc == nil {
			return
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := oc.Revoke(ctx, s.RefreshToken, "refresh_token"); err != nil {
				log.Warn("refresh token revocation failed", "error", err)
			}
		}()
	}
	sessions, err := session.NewManager(session.Options{
		Store:           store,
		CookieMode:      cookieMode,
		Keys:            cfg.Session.KeyBytes(),
		CookieName:      cfg.Session.CookieName,
		SameSite:        sameSite,
		IdleTimeout:     cfg.Session.IdleTimeout,
		AbsoluteTimeout: cfg.Session.AbsoluteTimeout,
		Now:             o.Now,
		OnExpire:        revoke,
	})
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	postLogout := cfg.OIDC.PostLogoutPath
	if postLogout == "" {
		postLogout = "/"
	}
	oc = oidc.New(oidc.Options{
		Issuer:                cfg.OIDC.Issuer,
		ClientID:              cfg.OIDC.ClientID,
		ClientSecret:          cfg.OIDC.ClientSecret,
		ClientAuth:            cfg.OIDC.ClientAuth,
		SigningKeys:           creds.main,
		AssertionAudience:     cfg.OIDC.ClientAssertionAudience,
		ClientCertificate:     creds.cert,
		RedirectURL:           pub.String() + cfg.OIDC.CallbackPath,
		PostLogoutRedirectURL: pub.String() + postLogout,
		Scopes:                cfg.OIDC.Scopes,
		AuthParams:            cfg.OIDC.AuthParams,
		UserInfo:              cfg.OIDC.UserInfo,
		HTTPClient:            o.HTTPClient,
		Logger:                log,
		Now:                   o.Now,
		ClockSkew:             cfg.OIDC.ClockSkew,
		OnClientAuthFailure:   met.ClientAuthFailure,
		TokenType:             dpop.tokenType(),
		PAR:                   cfg.OIDC.PAR,
		Profile:               cfg.OIDC.Profile,
	})
	check := csrf.New(cfg.CSRF.Header, cfg.CSRF.Value)
	check.OnReject = func() { met.Rejection("csrf") }
	mux := http.NewServeMux()
	// /bff/ belongs to the gateway: what it does not answer is 404, never
	// the SPA or a dev server.
	mux.Handle("/bff/", http.NotFoundHandler())

	var trusted []netip.Prefix
	for _, p := range cfg.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			addr, err2 := netip.ParseAddr(p)
			if err2 != nil {
				return nil, fmt.Errorf("trusted_proxies: %w", err)
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		trusted = append(trusted, pfx)
	}
	locker, ok := store.(session.Locker)
	if !ok {
		locker = &session.LocalLocker{Now: o.Now} // cookie mode: refreshes are shared within this process
	}
	service := oc // client-credentials and exchanged tokens
	if sc := cfg.OIDC.ServiceClient; sc != nil {
		service = oc.WithCredentials(oidc.Credentials{ClientID: sc.ClientID, ClientSecret: sc.ClientSecret, ClientAuth: sc.ClientAuth, SigningKeys: creds.service})
	}
	src := tokens.New(tokens.Options{
		Sessions:      sessions,
		OIDC:          oc,
		Service:       service,
		Locker:        locker,
		RefreshBefore: cfg.Session.RefreshBefore,
		RefreshParams: oidc.TokenParams{Resource: cfg.OIDC.AuthParams["resource"], Audience: cfg.OIDC.AuthParams["audience"]},
		OnRefresh:     met.Refresh,
		Tracer:        tr.tracer(),
		DPoP:          dpop.key,
		Logger:        log,
		Now:           o.Now,
	})
	replay := store
	if replay == nil {
		replay = memstore.New(o.Now) // cookie mode keeps no sessions, but still no replays
	}
	bff.New(bff.Options{
		Sessions: sessions, OIDC: oc, Tokens: src, CSRF: check,
		CallbackPath: cfg.OIDC.CallbackPath, PublicOrigin: pub.Scheme + "://" + pub.Host,
		Locker: locker, Replay: replay, Events: met, Logger: log, DPoP: cfg.OIDC.DPoP,
		Mediation: mediation(cfg),
	}).Register(mux, named)
	mux.Handle("GET "+bff.JWKSPath, named("bff_jwks", bff.JWKS(creds.jwks)))
	popts := proxy.Options{
		PublicURL:      pub,
		CSRFHeader:     check.Header(),
		SessionCookie:  sessions.CookieName(),
		TrustedProxies: trusted,
		OnUpstream:     met.Upstream,
		WrapTransport:  tr.transport,
		DPoP:           dpop.proxyNonces(),
		Now:            o.Now,
		Logger:         log,
	}
	ip := clientIPFunc(trusted)
	var apiLimit, loginLimit *ratelimit.Limiter
	if n := cfg.RateLimit.APIPerSecond; n > 0 {
		apiLimit = ratelimit.New(float64(n), 2*n, o.Now)
	}
	if n := cfg.RateLimit.LoginPerMinute; n > 0 {
		loginLimit = ratelimit.New(float64(n)/60, n, o.Now)
	}
	// API calls are limited per session, anonymous ones per client IP.
	apiKey := func(r *http.Request) string {
		if t := sessions.Ticket(r); t != "" {
			return "s\x00" + t
		}
		return "ip\x00" + ip(r)
	}
	var apiPrefixes []string
	type apiRoute struct {
		upstream  *url.URL
		bearer    *tokens.Route
		transport http.RoundTripper // for composite parts, with the route's TLS; nil: the composite's
	}
	var idle idleClosers
	routes := map[string]apiRoute{}
	for _, a := range cfg.APIs {
		up, err := url.Parse(a.Upstream)
		if err != nil {
			return nil, fmt.Errorf("apis %q: upstream: %w", a.Path, err)
		}
		ro := tokens.RouteOptions{Mode: tokens.Mode(a.Token), Scopes: a.Scopes, Resource: a.Resource, Audience: a.Audience}
		if a.Require != nil {
			ro.Require = &tokens.Policy{Scopes: a.Require.Scopes, Claims: a.Require.Claims, Path: a.Require.Path}
		}
		bearer, err := src.Route(ro)
		if err != nil {
			return nil, fmt.Errorf("apis %q: %w", a.Path, err)
		}
		tlsConf, err := upstreamTLS(a, creds.cert)
		if err != nil {
			return nil, err
		}
		route := apiRoute{upstream: up, bearer: bearer}
		if tlsConf != nil {
			pt := partTransport(tlsConf)
			idle.add(pt)
			route.transport = tr.transport(pt)
		}
		routes[a.Path] = route
		var h http.Handler = proxy.New(proxy.Route{
			Prefix: a.Path, Upstream: up, Bearer: bearer, Timeout: a.Timeout,
			Methods: a.Methods, MaxBodyBytes: int64(a.MaxBodyBytes), TLS: tlsConf,
		}, popts)
		idle.add(h)
		if apiLimit != nil {
			h = apiLimit.Middleware(apiKey, h)
		}
		if err := handle(mux, a.Path, named(a.Path, check.RequireAPI(pub.Scheme+"://"+pub.Host, a.AllowHeaderless, h))); err != nil {
			return nil, fmt.Errorf("apis %q: %w", a.Path, err)
		}
		literal, _, _ := strings.Cut(a.Path, "{") // no SPA fallback under any API route
		apiPrefixes = append(apiPrefixes, literal)
	}

	origin := pub.Scheme + "://" + pub.Host
	claims := func(r *http.Request) map[string]any {
		s, err := sessions.Load(r)
		if err != nil {
			return nil
		}
		return s.Claims
	}
	for _, c := range cfg.Composites {
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
					return nil, fmt.Errorf("composites %q: part %q: no API %q", c.Path, name, p.API)
				}
				part.Upstream, part.Bearer, part.Transport = rt.upstream, rt.bearer, rt.transport
			} else {
				if part.Upstream, err = url.Parse(p.Upstream); err != nil {
					return nil, fmt.Errorf("composites %q: part %q: %w", c.Path, name, err)
				}
				if part.Bearer, err = src.Route(tokens.RouteOptions{Mode: tokens.Mode(p.Token)}); err != nil {
					return nil, fmt.Errorf("composites %q: part %q: %w", c.Path, name, err)
				}
			}
			comp.Parts = append(comp.Parts, part)
		}
		var h http.Handler
		ct := aggregate.NewTransport(30 * time.Second)
		idle.add(ct)
		h, err = aggregate.New(comp, aggregate.Options{
			Claims: claims, Transport: tr.transport(ct), Logger: log,
			DPoP: dpop.partNonces(), Now: o.Now,
		})
		if err != nil {
			return nil, fmt.Errorf("composites %q: %w", c.Path, err)
		}
		if c.Require != nil {
			gate, err := src.Route(tokens.RouteOptions{Mode: tokens.UserOrNone, Require: &tokens.Policy{Scopes: c.Require.Scopes, Claims: c.Require.Claims, Path: c.Require.Path}})
			if err != nil {
				return nil, err
			}
			h = requirePolicy(gate, log, h)
		}
		if apiLimit != nil {
			h = apiLimit.Middleware(apiKey, h)
		}
		if err := handle(mux, "GET "+c.Path, named(c.Path, check.RequireAPI(origin, false, h))); err != nil {
			return nil, fmt.Errorf("composites %q: %w", c.Path, err)
		}
	}

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
	switch {
	case o.Frontend != nil:
		mux.Handle("/", named("spa", spa.NewFiles(o.Frontend, apiPrefixes...).WithCSP(csp)))
	case cfg.Frontend.DevServer != "":
		u, err := url.Parse(cfg.Frontend.DevServer)
		if err != nil {
			return nil, fmt.Errorf("frontend.dev_server: %w", err)
		}
		mux.Handle("/", named("spa", spa.DevServer(u)))
	case cfg.Frontend.Dir != "":
		mux.Handle("/", named("spa", spa.NewFiles(os.DirFS(cfg.Frontend.Dir), apiPrefixes...).WithCSP(csp)))
	}

	var h http.Handler = mux
	if apiLimit != nil {
		h = limitMediation(func(h http.Handler) http.Handler { return apiLimit.Middleware(apiKey, h) }, h)
	}
	h = sessions.Middleware(h)
	if loginLimit != nil {
		h = limitPaths(loginLimit, ip, []string{bff.LoginPath, cfg.OIDC.CallbackPath}, h)
	}
	h, err = csrf.CrossOrigin(cfg.CORS.AllowedOrigins, h)
	if err != nil {
		return nil, fmt.Errorf("cors.allowed_origins: %w", err)
	}
	h = csrf.CORS(cfg.CORS.AllowedOrigins, check.Header(), h)
	h = csrf.SecurityHeaders(pub.Scheme == "https", h)
	h = hostGuard(pub.Host, h)
	h = observe(met, sessions, log, o.AccessLog, h)
	h = tr.handler(h)
	checks := map[string]admin.Check{
		"identity_provider": func(context.Context) error {
			if !oc.Ready() {
				return errors.New("discovery has not succeeded yet")
			}
			return nil
		},
	}
	if store != nil {
		checks["session_store"] = func(ctx context.Context) error {
			if p, ok := store.(interface{ Ping(context.Context) error }); ok {
				if err := p.Ping(ctx); err != nil {
					return errors.New("unreachable")
				}
				return nil
			}
			if _, err := store.Get(ctx, "readiness-probe"); err != nil && !errors.Is(err, session.ErrNotFound) {
				return errors.New("unreachable")
			}
			return nil
		}
	}
	adm := admin.New(admin.Options{
		Sessions: sessions, Tokens: src, Token: cfg.AdminToken, Checks: checks, Logger: log,
		Extra: map[string]http.Handler{"GET /metrics": met.Handler()},
	})
	return &Server{Handler: h, Admin: adm, OIDC: oc, store: store, log: log, tracing: tr, idle: idle}, nil
}

// openStore opens the configured store; nil means cookie mode.
func openStore(cfg config.Session, now func() time.Time, log *slog.Logger) (session.Store, error) {
	spec := cfg.Store
	switch {
	case spec == "memory":
		return memstore.NewStore(memstore.Options{Now: now, MaxEntries: cfg.MaxSessions}), nil
	case spec == "cookie":
		return nil, nil
	case strings.HasPrefix(spec, "file:"):
		st, err := filestore.Open(filestore.Options{Path: strings.TrimPrefix(spec, "file:"), Now: now, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("session.store: %w", err)
		}
		return st, nil
	case isRedis(spec):
		st, err := redisstore.New(redisstore.Options{URL: spec, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("session.store: %w", err)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("session.store: unknown store %q", spec)
	}
}

func isRedis(spec string) bool {
	for _, p := range []string{"redis://", "rediss://", "redis-sentinel://", "rediss-sentinel://", "valkey://", "valkeys://", "unix://"} {
		if strings.HasPrefix(spec, p) {
			return true
		}
	}
	return false
}

// CheckComposites builds every composite the way New does, without any
// store or network, and reports what only that reveals: bad template
// placeholders, unknown part references, dependency cycles, profile paths.
// `cloakroom check` runs it.
func CheckComposites(cfg *config.Config) []config.Problem {
	var out []config.Problem
	apis := map[string]*url.URL{}
	for _, a := range cfg.APIs {
		if u, err := url.Parse(a.Upstream); err == nil {
			apis[a.Path] = u
		}
	}
	for i, c := range cfg.Composites {
		comp := aggregate.Composite{Path: c.Path, DefaultProfile: c.DefaultProfile, Deadline: c.Deadline, Profiles: map[string]aggregate.Profile{}}
		for name, p := range c.Profiles {
			comp.Profiles[name] = aggregate.Profile{Allow: p.Allow, Deny: p.Deny, Map: p.Map}
		}
		for _, name := range slices.Sorted(maps.Keys(c.Parts)) {
			p := c.Parts[name]
			up := apis[p.API]
			if p.API == "" {
				up, _ = url.Parse(p.Upstream)
			}
			if up == nil {
				continue // reported by config.Validate
			}
			comp.Parts = append(comp.Parts, aggregate.Part{Name: name, Upstream: up, Path: p.Path, Required: p.Required, Timeout: p.Timeout, Bearer: noBearer{}})
		}
		claims := func(*http.Request) map[string]any { return nil }
		if _, err := aggregate.New(comp, aggregate.Options{Claims: claims}); err != nil {
			key := fmt.Sprintf("composites[%d]", i)
			out = append(out, config.Problem{Line: cfg.Line(key + ".path"), Key: key, Msg: err.Error()})
		}
	}
	return out
}

type noBearer struct{}

func (noBearer) Token(*http.Request) (string, error) { return "", nil }

// handle registers h for pattern, turning ServeMux's panic on patterns that
// overlap without one being more specific into an error.
func handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// requirePolicy lets a request through only when gate (a route that
// evaluates a policy) finds no fault with it.
func requirePolicy(gate *tokens.Route, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := gate.Token(r); err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitPaths applies l, keyed by client IP, to requests for paths.
func limitPaths(l *ratelimit.Limiter, ip func(*http.Request) string, paths []string, next http.Handler) http.Handler {
	limited := l.Middleware(ip, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(paths, r.URL.Path) {
			limited.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientIPFunc returns the client's address: the connection's peer, or,
// when the peer is a trusted proxy, the right-most X-Forwarded-For entry
// that is not one (entries further left are the client's own claims).
func clientIPFunc(trusted []netip.Prefix) func(*http.Request) string {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		addr, err := netip.ParseAddr(host)
		if err != nil || !isTrusted(addr.Unmap()) {
			return host
		}
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				return host
			}
			if !isTrusted(a.Unmap()) {
				return a.Unmap().String()
			}
		}
		return host
	}
}

// hostGuard refuses requests for any host but the public one, so a DNS
// rebinding page cannot talk to the gateway under its own name.
func hostGuard(host string, next http.Handler) http.Handler {
	allowed := []string{strings.ToLower(host)}
	if h, p, err := net.SplitHostPort(host); err == nil && p == "" {
		allowed = append(allowed, h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(allowed, strings.ToLower(r.Host)) {
			httpx.Problem(w, http.StatusMisdirectedRequest, "unknown host")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Run serves until ctx ends, then drains in-flight requests for up to
// DrainTimeout. Discovery runs in the background: a provider that is down
// at start does not stop the gateway; /bff/login answers 503 until it is
// found. See Options.Reload for live reconfiguration.
func Run(ctx context.Context, cfg *config.Config, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
		o.Logger = log
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	tr, err := newTracing(o.TracerProvider)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	o.tracing = tr
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tr.shutdown(ctx)
	}()
	if cfg.Session.Store != "cookie" {
		if o.store, err = openStore(cfg.Session, o.Now, log); err != nil {
			return err
		}
		defer o.store.Close()
	}
	s, err := New(cfg, o)
	if err != nil {
		return err
	}
	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Each configuration's client retries discovery until it succeeds or
	// the configuration is replaced.
	discover := func(c *oidc.Client) context.CancelFunc {
		dctx, stop := context.WithCancel(ctx)
		go c.Run(dctx)
		return stop
	}
	// The first configuration's first discovery decides whether to start
	// at all: a provider that answers but cannot serve the configuration
	// (oidc.par required, oidc.profile) ends Run; one that is down is
	// retried, and found unfit later it leaves the gateway not ready.
	dctx, stopDiscovery := context.WithCancel(ctx)
	firstDiscovery := s.OIDC.Start(dctx)
	defer func() { stopDiscovery() }()

	var public, adminH atomic.Pointer[http.Handler]
	public.Store(&s.Handler)
	adminH.Store(&s.Admin)
	srv := &http.Server{
		Handler:           swapped(&public),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	var adminSrv *http.Server
	aln := o.AdminListener
	if aln == nil && cfg.AdminListen != "" {
		if aln, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			srv.Close()
			return fmt.Errorf("admin_listen: %w", err)
		}
	}
	if aln != nil {
		adminSrv = &http.Server{Handler: swapped(&adminH), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
		go func() { errc <- adminSrv.Serve(aln) }()
	}
	log.Info("cloakroom listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL)
	for done := false; !done; {
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			done = true
		case err := <-firstDiscovery:
			firstDiscovery = nil
			if errors.Is(err, oidc.ErrUnfit) {
				srv.Close()
				if adminSrv != nil {
					adminSrv.Close()
				}
				return fmt.Errorf("identity provider: %w", err)
			}
		case <-o.Reload:
			next, ncfg, err := reload(ctx, cfg, o)
			if err != nil {
				log.Error("configuration reload refused; the running configuration stays", "error", err)
				continue
			}
			stopDiscovery()
			stopDiscovery = discover(next.OIDC) // already discovered; returns at once
			public.Store(&next.Handler)
			adminH.Store(&next.Admin)
			s.idle.closeIdle()
			s = next
			cfg = ncfg
			log.Info("configuration reloaded")
		}
	}
	drain := o.DrainTimeout
	if drain <= 0 {
		drain = 30 * time.Second
	}
	sctx, scancel := context.WithTimeout(context.Background(), drain)
	defer scancel()
	if adminSrv != nil {
		defer adminSrv.Close()
	}
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close() // streams still open past the drain limit are cut
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		log.Warn("drain limit reached; remaining connections closed", "limit", drain.String())
	}
	return nil
}

// reload builds a gateway from a freshly read configuration, on the same
// store, metrics and tracing, and makes sure it can reach its provider
// before it is put in front.
func reload(ctx context.Context, old *config.Config, o Options) (*Server, *config.Config, error) {
	if o.LoadConfig == nil {
		return nil, nil, errors.New("no configuration source")
	}
	cfg, err := o.LoadConfig()
	if err != nil {
		return nil, nil, err
	}
	switch {
	case cfg.Session.Store != old.Session.Store:
		return nil, nil, errors.New("session.store changed: restart to change stores")
	case cfg.Listen != old.Listen || cfg.AdminListen != old.AdminListen:
		return nil, nil, errors.New("listen or admin_listen changed: restart to change addresses")
	}
	s, err := New(cfg, o)
	if err != nil {
		return nil, nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := s.OIDC.Discover(dctx); err != nil {
		return nil, nil, err
	}
	return s, cfg, nil
}

// swapped serves whatever handler p holds at the time of each request;
// requests in flight keep the handler they started with.
func swapped(p *atomic.Pointer[http.Handler]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*p.Load()).ServeHTTP(w, r)
	})
}
