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
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloakroom/cloakroom/internal/admin"
	"github.com/cloakroom/cloakroom/internal/aggregate"
	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/metrics"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/ratelimit"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/filestore"
	"github.com/cloakroom/cloakroom/internal/session/memstore"
	"github.com/cloakroom/cloakroom/internal/session/redisstore"
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
	// Files, when set, replaces the frontend.dir of each frontend it names
	// (the demo's embedded SPAs), ahead of Frontend.
	Files map[string]fs.FS
	// Now defaults to time.Now.
	Now func() time.Time
	// HTTPClient for the identity provider; default oidc.NewHTTPClient.
	HTTPClient *http.Client
	// AdminListener, when set, is used instead of listening on
	// cfg.AdminListen.
	AdminListener net.Listener
	// RedirectListener, when set and cfg.TLS is, is used instead of
	// listening on cfg.TLS.RedirectHTTP.
	RedirectListener net.Listener
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
	// (listen addresses, the session store, the tls section) or cannot
	// reach its provider is refused, and the old one keeps serving. The
	// listener's certificate files (tls.cert_file, tls.key_file) are read
	// again either way.
	Reload     <-chan struct{}
	LoadConfig func() (*config.Config, error)
	// DrainTimeout bounds how long a shutdown waits for in-flight
	// requests, long streams included. Default 30s.
	DrainTimeout time.Duration
	// Hurry, when it delivers during shutdown_delay (a second SIGTERM or
	// SIGINT), ends the delay: the drain starts at once.
	Hurry <-chan struct{}

	store   session.Store // set by Run: shared by every rebuild
	tracing *tracing
}

// Server is a built gateway.
type Server struct {
	Handler http.Handler
	// Admin serves /healthz, /readyz and the session admin API.
	Admin http.Handler
	// OIDC is the first frontend's provider client.
	OIDC      *oidc.Client
	frontends *frontendSet
	store     session.Store
	log       *slog.Logger
	tracing   *tracing
}

// New builds the gateway from cfg: the parts every frontend shares, then
// each frontend, then the chain in front of them. It starts nothing.
func New(cfg *config.Config, o Options) (*Server, error) {
	fcs := frontendConfigs(cfg)
	sh, err := newShared(cfg, o)
	if err != nil {
		return nil, err
	}
	list := make([]*frontend, 0, len(fcs))
	for _, fc := range fcs {
		f, err := sh.frontend(fc)
		if err != nil {
			return nil, err
		}
		list = append(list, f)
	}
	set := newFrontendSet(list)
	h := sh.tr.handler(observe(sh.met, set, sh.log, o.AccessLog, sh.lb))
	return &Server{
		Handler: h, Admin: sh.admin(cfg, set), OIDC: list[0].oidc, frontends: set,
		store: sh.store, log: sh.log, tracing: sh.tr,
	}, nil
}

// frontendConfigs are the frontends cfg describes (config.Config.Apps):
// without frontends:, the top level is the one frontend, at "/". Each
// frontend's settings are laid over a copy of cfg, so that what is built
// from a *config.Config (client credentials, upstream TLS, DPoP, the
// mediated routes) is built the same for one frontend or many.
func frontendConfigs(cfg *config.Config) []frontendConfig {
	apps := cfg.Apps()
	out := make([]frontendConfig, len(apps))
	for i, a := range apps {
		c := *cfg
		c.PublicURL, c.OIDC, c.Session, c.Frontend = a.PublicURL, a.OIDC, a.Session, a.Frontend
		c.CORS, c.CSRF, c.RateLimit, c.APIs, c.Composites = a.CORS, a.CSRF, a.RateLimit, a.APIs, a.Composites
		c.Frontends = nil
		out[i] = frontendConfig{name: a.Name, path: a.Path, cookiePath: a.CookiePath, cfg: &c, at: func(key string) string { return cfg.AppKey(i, key) }}
	}
	// A returnUrl must not lie under a longer path of another frontend
	// on the same origin.
	for i := range out {
		for j, other := range out {
			if i != j && sameOrigin(out[i].cfg.PublicURL, other.cfg.PublicURL) && len(other.path) > len(out[i].path) && strings.HasPrefix(other.path, out[i].path) {
				out[i].inner = append(out[i].inner, other.path)
			}
		}
	}
	return out
}

// sameOrigin reports whether the public URLs a and b share scheme, host
// and port.
func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host)
}

// shared are the parts of a build that every frontend uses: logging,
// metrics, tracing, the session store and its locks, the trusted proxies,
// the process's DPoP key, and the provider clients.
type shared struct {
	o          Options
	log        *slog.Logger
	met        *metrics.Metrics
	tr         *tracing
	store      session.Store // nil in cookie mode
	cookieMode bool
	keys       [][]byte
	trusted    []netip.Prefix
	ip         func(*http.Request) string
	lb         *lbWarning // see lbwarn.go
	locker     session.Locker
	replay     session.Store
	dpop       dpopWiring
	// providers are shared by the clients of each issuer (one discovery,
	// one JWKS), by issuer.
	providers map[string]*oidc.Provider
	// tokenCache holds every frontend's client-credentials and exchanged
	// tokens: frontends of the same service client share them.
	tokenCache *tokens.Cache
}

// newShared builds the parts of cfg that frontends share.
func newShared(cfg *config.Config, o Options) (*shared, error) {
	sh := &shared{o: o, log: o.Logger, met: o.Metrics, tr: o.tracing, store: o.store, cookieMode: cfg.Session.Store == "cookie", keys: cfg.Session.KeyBytes(), providers: map[string]*oidc.Provider{}, tokenCache: new(tokens.Cache)}
	if sh.log == nil {
		sh.log = slog.New(slog.DiscardHandler)
	}
	if sh.met == nil {
		sh.met = metrics.New()
	}
	var err error
	if sh.tr == nil {
		if sh.tr, err = newTracing(o.TracerProvider); err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
	}
	if sh.store == nil && !sh.cookieMode {
		if sh.store, err = openStore(cfg.Session, o.Now, sh.log); err != nil {
			return nil, err
		}
	}
	for _, p := range cfg.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			addr, err2 := netip.ParseAddr(p)
			if err2 != nil {
				return nil, fmt.Errorf("trusted_proxies: %w", err)
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		sh.trusted = append(sh.trusted, pfx)
	}
	sh.ip = clientIPFunc(sh.trusted)
	sh.lb = newLBWarning(sh.trusted, sh.log)
	var ok bool
	if sh.locker, ok = sh.store.(session.Locker); !ok {
		sh.locker = &session.LocalLocker{Now: o.Now} // cookie mode: refreshes are shared within this process
	}
	sh.replay = sh.store
	if sh.replay == nil {
		sh.replay = memstore.New(o.Now) // cookie mode keeps no sessions, but still no replays
	}
	if sh.dpop, err = newDPoP(cfg); err != nil { // see dpop.go
		return nil, err
	}
	return sh, nil
}

// dpopFor is the DPoP wiring of a frontend with cfg: the process's, or
// none when its oidc.dpop is off.
func (sh *shared) dpopFor(cfg *config.Config) dpopWiring {
	if !cfg.OIDC.DPoP {
		return dpopWiring{}
	}
	return sh.dpop
}

// provider is the client of a frontend's provider, which signs its users
// in at pub. Frontends whose provider is the same (one issuer) have a
// client each, on one oidc.Provider: one discovery document and one JWKS
// for all of them.
func (sh *shared) provider(cfg *config.Config, pub *url.URL, creds *clientCredentials, dpop dpopWiring) *oidc.Client {
	postLogout := cfg.OIDC.PostLogoutPath
	if postLogout == "" {
		postLogout = "/"
	}
	p := sh.providers[cfg.OIDC.Issuer]
	if p == nil {
		p = oidc.NewProvider(cfg.OIDC.Issuer)
		sh.providers[cfg.OIDC.Issuer] = p
	}
	return oidc.New(oidc.Options{
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
		HTTPClient:            sh.o.HTTPClient,
		Logger:                sh.log,
		Now:                   sh.o.Now,
		ClockSkew:             cfg.OIDC.ClockSkew,
		OnClientAuthFailure:   sh.met.ClientAuthFailure,
		TokenType:             dpop.tokenType(),
		PAR:                   cfg.OIDC.PAR,
		Profile:               cfg.OIDC.Profile,
		Provider:              p,
	})
}

// sessions is a frontend's session manager on the shared store; oc
// revokes the refresh tokens of the sessions it finds expired.
func (sh *shared) sessions(fc frontendConfig, oc *oidc.Client) (*session.Manager, error) {
	cfg := fc.cfg
	sameSite := http.SameSiteStrictMode
	if strings.EqualFold(cfg.Session.SameSite, "lax") {
		sameSite = http.SameSiteLaxMode
	}
	log := sh.log
	revoke := func(s *session.Session) {
		if s.RefreshToken == "" {
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
	m, err := session.NewManager(session.Options{
		Store:           sh.store,
		CookieMode:      sh.cookieMode,
		Keys:            sh.keys,
		Frontend:        fc.name,
		CookieName:      cfg.Session.CookieName,
		CookiePath:      fc.cookiePath,
		SameSite:        sameSite,
		IdleTimeout:     cfg.Session.IdleTimeout,
		AbsoluteTimeout: cfg.Session.AbsoluteTimeout,
		Now:             sh.o.Now,
		OnExpire:        revoke,
	})
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return m, nil
}

var errDiscovery = errors.New("discovery has not succeeded yet")

// admin serves /healthz, /readyz (the session store, and each frontend's
// provider), /metrics and the session admin API.
func (sh *shared) admin(cfg *config.Config, set *frontendSet) http.Handler {
	checks := map[string]admin.Check{}
	var sessions []admin.Frontend
	for _, f := range set.list {
		name := "identity_provider"
		if f.name != "" {
			name += "_" + f.name
		}
		checks[name] = f.ready
		sessions = append(sessions, admin.Frontend{Sessions: f.sessions, Tokens: f.tokens})
	}
	if store := sh.store; store != nil {
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
	return admin.New(admin.Options{
		Frontends: sessions, Token: cfg.AdminToken, Checks: checks, Warnings: sh.lb.warnings, Logger: sh.log,
		Extra: map[string]http.Handler{"GET /metrics": sh.met.Handler()},
	})
}

// clients are the provider clients of s's frontends, each once.
func (s *Server) clients() []*oidc.Client {
	var out []*oidc.Client
	for _, f := range s.frontends.list {
		if !slices.Contains(out, f.oidc) {
			out = append(out, f.oidc)
		}
	}
	return out
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

// CheckComposites builds every composite of every frontend the way New
// does, without any store or network, and reports what only that reveals:
// bad template placeholders, unknown part references, dependency cycles,
// profile paths. A shared top-level composite is reported once, at its
// own line. `cloakroom check` runs it.
func CheckComposites(cfg *config.Config) []config.Problem {
	var out []config.Problem
	for _, fc := range frontendConfigs(cfg) {
		for _, p := range checkComposites(fc) {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// checkComposites is CheckComposites for one frontend.
func checkComposites(fc frontendConfig) []config.Problem {
	var out []config.Problem
	cfg := fc.cfg
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
			key := fc.at(fmt.Sprintf("composites[%d]", i))
			out = append(out, config.Problem{Line: keyLine(cfg, fc.at(fmt.Sprintf("composites[%d].path", i))), Key: key, Msg: err.Error()})
		}
	}
	return out
}

// keyLine is the line of the file's key: its own, or, for a key of a
// frontends[] entry the file does not hold (left to its default), the
// nearest key above it.
func keyLine(cfg *config.Config, key string) int {
	for k := key; ; {
		if l := cfg.Line(k); l > 0 || !strings.HasPrefix(key, "frontends[") {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i <= 0 {
			return 0
		}
		k = k[:i]
	}
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
func limitPaths(l limiter, ip func(*http.Request) string, paths []string, next http.Handler) http.Handler {
	limited := ratelimit.Middleware(l, ip, next)
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

// Run serves until ctx ends; then /readyz answers 503, the listener keeps
// serving for cfg.ShutdownDelay (see Options.Hurry), and in-flight
// requests drain for up to DrainTimeout. Discovery runs in the
// background: a provider that is down at start does not stop the gateway;
// /bff/login answers 503 until it is found. See Options.Reload for live
// reconfiguration.
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	certs, err := newTLS(ctx, cfg, log) // see listentls.go
	if err != nil {
		return err
	}
	if certs != nil {
		defer certs.Close()
	}
	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	scheme := "http"
	if certs != nil {
		ln, scheme = certs.NewListener(ln), "https"
	}
	// Each configuration's client retries discovery until it succeeds or
	// the configuration is replaced.
	discover := func(cs []*oidc.Client) context.CancelFunc {
		dctx, stop := context.WithCancel(ctx)
		for _, c := range cs {
			go c.Run(dctx)
		}
		return stop
	}
	// The first configuration's first discovery decides whether to start
	// at all: a provider that answers but cannot serve the configuration
	// (oidc.par required, oidc.profile) ends Run; one that is down is
	// retried, and found unfit later it leaves the gateway not ready.
	dctx, stopDiscovery := context.WithCancel(ctx)
	firstDiscovery := startDiscovery(dctx, s.clients())
	defer func() { stopDiscovery() }()

	var public, adminH atomic.Pointer[http.Handler]
	var draining atomic.Bool // see drainingReady
	public.Store(&s.Handler)
	adminH.Store(&s.Admin)
	srv := &http.Server{
		Handler:           swapped(&public),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 3)
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
		adminSrv = &http.Server{Handler: drainingReady(&draining, swapped(&adminH)), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
		go func() { errc <- adminSrv.Serve(aln) }()
	}
	rln := o.RedirectListener
	if rln == nil && certs != nil && cfg.TLS.RedirectHTTP != "" {
		if rln, err = net.Listen("tcp", cfg.TLS.RedirectHTTP); err != nil {
			srv.Close()
			if adminSrv != nil {
				adminSrv.Close()
			}
			return fmt.Errorf("tls.redirect_http: %w", err)
		}
	}
	if rln != nil && certs != nil {
		redirectSrv := certs.RedirectServer()
		defer redirectSrv.Close()
		go func() { errc <- redirectSrv.Serve(rln) }()
		log.Info("redirecting http to https", "addr", rln.Addr().String())
	}
	log.Info("cloakroom listening", "addr", ln.Addr().String(), "scheme", scheme, "public_url", cfg.PublicURL)
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
			if certs != nil {
				certs.Reload() // logs its own failure
			}
			next, ncfg, err := reload(ctx, cfg, o)
			if err != nil {
				log.Error("configuration reload refused; the running configuration stays", "error", err)
				continue
			}
			stopDiscovery()
			stopDiscovery = discover(next.clients()) // already discovered; returns at once
			public.Store(&next.Handler)
			adminH.Store(&next.Admin)
			s.frontends.closeIdle()
			s = next
			cfg = ncfg
			if certs != nil {
				certs.SetOrigins(origins(cfg))
			}
			log.Info("configuration reloaded")
		}
	}
	draining.Store(true)
	if err := delayShutdown(cfg.ShutdownDelay, o.Hurry, errc, log); err != nil {
		return err
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
	case !sameTLS(cfg, old):
		return nil, nil, errors.New("tls changed: restart to change it (the certificate files are read again without one)")
	case !sameACMEHosts(cfg, old):
		return nil, nil, errors.New("the frontends' hosts changed under tls.acme: restart to obtain certificates for them")
	}
	s, err := New(cfg, o)
	if err != nil {
		return nil, nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	clients := s.clients()
	errs := make(chan error, len(clients))
	for _, c := range clients {
		go func() { errs <- c.Discover(dctx) }()
	}
	for range clients {
		if err := <-errs; err != nil {
			return nil, nil, err
		}
	}
	return s, cfg, nil
}

// startDiscovery starts discovery for each client (see oidc.Client.Start)
// and returns a channel that receives the first attempts' outcome: the
// first that wraps oidc.ErrUnfit, else nil once every client has made
// its first attempt.
func startDiscovery(ctx context.Context, clients []*oidc.Client) <-chan error {
	firsts := make([]<-chan error, len(clients))
	for i, c := range clients {
		firsts[i] = c.Start(ctx)
	}
	out := make(chan error, 1)
	go func() {
		for _, first := range firsts {
			if err := <-first; errors.Is(err, oidc.ErrUnfit) {
				out <- err
				return
			}
		}
		out <- nil
	}()
	return out
}

// swapped serves whatever handler p holds at the time of each request;
// requests in flight keep the handler they started with.
func swapped(p *atomic.Pointer[http.Handler]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*p.Load()).ServeHTTP(w, r)
	})
}
