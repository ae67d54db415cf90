// Package tokens finds the access token to attach to an API call, and keeps
// it fresh without ever racing:
//
//   - user: the session's access token, refreshed with its refresh token
//     when it expires within RefreshBefore. Concurrent requests of one
//     session share one refresh: in this process through a single-flight
//     group, across processes through the store's Locker. Under the lock
//     the session is re-read and the expiry re-checked, so a refresh some
//     other holder just finished is used, not repeated. The refresh runs
//     under a timeout shorter than the lock's TTL, so a lock can never
//     expire under a refresh still in flight.
//   - client: a client-credentials token for the gateway itself, cached per
//     scopes/resource/audience until shortly before it expires.
//   - exchange: the user's token traded (RFC 8693) for one scoped to the
//     route, cached per user token and route until it expires.
//
// Client and exchanged tokens live in a Cache, which Sources of the same
// service client may share (Options.Cache; see cache.go).
//   - user_or_client, user_or_none, none: as named.
//
// A failed refresh is one of four things (oidc.IsDeadGrant,
// oidc.ErrUntrusted, oidc.IsClientAuthFailure):
//
//   - A dead refresh token: the provider answered 400, whatever its error
//     code (Dex v2.45.1 says invalid_request for a spent or expired token),
//     or invalid_grant. The session ends: the request gets 401 and so does
//     /bff/user afterwards, so the SPA signs the user in again.
//   - An answer that cannot be trusted: a token_type other than the one
//     asked for, or a new ID token (or userinfo answer) that fails
//     validation (another iss, sub or aud, an azp that is not ours, a bad
//     signature, no iat, ...). The session ends (401), and the tokens the
//     answer carried and the session's refresh token are revoked, best
//     effort.
//   - The provider refusing the gateway's own credentials: invalid_client
//     or any 401. That is a configuration fault, logged at error level
//     with the fix and counted (outcome client_auth). The session stays,
//     as for an outage, since signing in again cannot help (the code
//     exchange needs the same credentials): the request gets 503
//     problem+json and the session's refreshes back off.
//   - Anything else (5xx, 403, 404, 429, timeouts, transport errors, and
//     a 400 use_dpop_nonce or invalid_dpop_proof, which refuses the DPoP
//     proof and not the grant: oidc.IsProofRefusal) is the provider being
//     down, not a dead token: the request gets 503, the session stays,
//     and the session's next refresh waits a growing backoff (1s to 30s)
//     while its current token, if still valid, keeps being used.
//
// A client-credentials or exchange token request the provider refuses
// (an answer below 500, or one that fails validation) gets 401; one it
// cannot answer gets 503.
package tokens

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/session"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"
)

// Mode says which token a route forwards.
type Mode string

// Token modes of apis[].token.
const (
	User         Mode = "user"
	Client       Mode = "client"
	UserOrClient Mode = "user_or_client"
	UserOrNone   Mode = "user_or_none"
	None         Mode = "none"
	Exchange     Mode = "exchange"
)

// Defaults of Options.
const (
	DefaultRefreshBefore  = 60 * time.Second
	DefaultRefreshTimeout = 10 * time.Second
	// DefaultLifetime is assumed for an access token whose expiry neither
	// expires_in nor a JWT exp tells.
	DefaultLifetime = 5 * time.Minute
)

// expiryMargin is how long before AccessExpiry a token stops counting as
// valid for forwarding in place of a refresh that could not run. The
// expiry is now plus expires_in, whole seconds from when the provider
// issued the token, counted from when its answer arrived: the token's own
// exp may be up to a second and a round trip earlier, and an API then
// refuses it (401) where the gateway should answer 503.
const expiryMargin = 2 * time.Second

// Options configure a Source.
type Options struct {
	Sessions *session.Manager
	// OIDC refreshes and revokes users' tokens.
	OIDC *oidc.Client
	// Service gets the client-credentials and exchanged tokens (modes
	// client, user_or_client without a session, exchange): a second client
	// at the same provider (oidc.Client.WithCredentials), for providers that
	// refuse one client both grants. Default OIDC.
	Service *oidc.Client
	// Locker serialises refreshes of one session across every process
	// sharing the store.
	Locker session.Locker
	// RefreshBefore: refresh when the token expires within this; capped at
	// half the token's lifetime, so short-lived tokens never loop. Zero
	// refreshes only expired tokens; negative means DefaultRefreshBefore.
	RefreshBefore time.Duration
	// RefreshTimeout bounds one call to the provider; the lock's TTL is
	// three times as long.
	RefreshTimeout time.Duration
	// RefreshParams go with every user refresh (e.g. an RFC 8707 resource).
	RefreshParams oidc.TokenParams
	// OnRefresh, when set, is told each refresh a request waited for:
	// outcome ok, dead_token, untrusted, client_auth or idp_error, and how
	// long the request waited.
	OnRefresh func(outcome string, wait time.Duration)
	// Tracer, when set, gets a span for each refresh, client-credentials
	// fetch and token exchange a request waits for.
	Tracer trace.Tracer
	// DPoP, when set, makes tokens DPoP-bound (RFC 9449; see dpop.go):
	// each session's own key signs its refreshes, a session without one
	// gets one at its next refresh, and this key, the process's, signs
	// the client-credentials and exchange requests, whose tokens are
	// cached per process too.
	DPoP *oidc.DPoPKey
	// Cache holds the client-credentials and exchanged tokens; Sources
	// may share one (see Cache). Nil: a Cache of this Source's own.
	Cache  *Cache
	Logger *slog.Logger
	Now    func() time.Time
}

// Source hands out tokens.
type Source struct {
	sessions      *session.Manager
	oidc          *oidc.Client
	service       *oidc.Client
	locker        session.Locker
	refreshBefore time.Duration
	timeout       time.Duration
	params        oidc.TokenParams
	onRefresh     func(string, time.Duration)
	tracer        trace.Tracer
	log           *slog.Logger
	now           func() time.Time
	dpop          *oidc.DPoPKey
	keys          dpopKeys

	cache *Cache
	// scope begins the cache keys of the routes' tokens (cacheScope).
	scope string

	flight singleflight.Group // by session lock key: refreshes in flight

	mu      sync.Mutex
	backoff map[string]backoff // session lock key → next allowed refresh
	recent  map[string]recentRefresh
}

// recentRefresh remembers, in cookie mode, the refresh a session just
// had: requests still carrying the old cookie (sent before the response
// with the new one arrived) get the new session instead of refreshing again
// with a refresh token the provider has already rotated away.
type recentRefresh struct {
	oldRefresh [32]byte
	fresh      *session.Session
	at         time.Time
}

// recentGrace is how long a cookie-mode refresh result is reused.
const recentGrace = time.Minute

type backoff struct {
	until time.Time
	step  time.Duration
}

// maxCache bounds a Cache, the backoff table and the recent refreshes.
const maxCache = 100_000

// New returns a Source.
func New(o Options) *Source {
	s := &Source{
		sessions:      o.Sessions,
		oidc:          o.OIDC,
		service:       o.Service,
		locker:        o.Locker,
		refreshBefore: o.RefreshBefore,
		timeout:       o.RefreshTimeout,
		params:        o.RefreshParams,
		onRefresh:     o.OnRefresh,
		tracer:        o.Tracer,
		dpop:          o.DPoP,
		log:           o.Logger,
		now:           o.Now,
		cache:         o.Cache,
		backoff:       make(map[string]backoff),
		recent:        make(map[string]recentRefresh),
	}
	if s.service == nil {
		s.service = s.oidc
	}
	if s.cache == nil {
		s.cache = new(Cache)
	}
	s.scope = cacheScope(s.service, s.dpop)
	if s.refreshBefore < 0 {
		s.refreshBefore = DefaultRefreshBefore
	}
	if s.timeout <= 0 {
		s.timeout = DefaultRefreshTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.onRefresh == nil {
		s.onRefresh = func(string, time.Duration) {}
	}
	if s.tracer == nil {
		s.tracer = noop.NewTracerProvider().Tracer("")
	}
	return s
}

// RouteOptions describe one route's token needs.
type RouteOptions struct {
	Mode Mode
	// Scopes, Resource and Audience narrow client and exchanged tokens.
	Scopes   []string
	Resource string
	Audience string
	// Require, when set, must hold for the request's session, else 403.
	Require *Policy
}

// Policy is an authorization requirement on a route: every scope must have
// been granted to the session's access token, and for each claim the user's
// value (or one of its values) must be among those listed.
type Policy struct {
	Scopes []string
	Claims map[string][]string
	// Path binds request path parameters (r.PathValue) to claims: the
	// value must be "{claims.NAME}" and the parameter must equal that
	// claim of the caller, exactly.
	Path map[string]string
}

// Allows reports whether s, making r, meets p: what a route's Token
// checks, for callers that hand out a route's token otherwise (POST
// /bff/token). A path binding needs r's path values (r.PathValue): a
// request without them is denied.
func (p *Policy) Allows(r *http.Request, s *session.Session) bool { return p.allows(r, s) }

// allows reports whether s, making r, meets p.
func (p *Policy) allows(r *http.Request, s *session.Session) bool {
	if s == nil {
		return false
	}
	for param, bind := range p.Path {
		name, ok := strings.CutPrefix(bind, "{claims.")
		name, ok2 := strings.CutSuffix(name, "}")
		v, isStr := s.Claims[name].(string)
		if !ok || !ok2 || !isStr || v == "" || r.PathValue(param) != v {
			return false
		}
	}
	for _, sc := range p.Scopes {
		if !slices.Contains(s.Scopes, sc) {
			return false
		}
	}
	for name, want := range p.Claims {
		if !claimMatches(s.Claims[name], want) {
			return false
		}
	}
	return true
}

func claimMatches(v any, want []string) bool {
	switch x := v.(type) {
	case string:
		return slices.Contains(want, x)
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && slices.Contains(want, s) {
				return true
			}
		}
	case bool, float64:
		return slices.Contains(want, fmt.Sprint(x))
	}
	return false
}

// Route is the token source of one API route; it satisfies proxy.Bearer.
type Route struct {
	src    *Source
	mode   Mode
	policy *Policy
	params oidc.TokenParams
	key    string // cache key part for client/exchange tokens: scope and params
}

// Route returns the source for one route.
func (s *Source) Route(o RouteOptions) (*Route, error) {
	switch o.Mode {
	case User, UserOrNone, None, Client, UserOrClient:
	case Exchange:
		if o.Audience == "" && o.Resource == "" {
			return nil, errors.New("token mode exchange needs an audience or a resource")
		}
	default:
		return nil, fmt.Errorf("unknown token mode %q", o.Mode)
	}
	p := oidc.TokenParams{Scopes: o.Scopes, Resource: o.Resource, Audience: o.Audience}
	key := s.scope + " " + strconv.Quote(strings.Join(o.Scopes, " ")) + " " + strconv.Quote(o.Resource) + " " + strconv.Quote(o.Audience)
	return &Route{src: s, mode: o.Mode, policy: o.Require, params: p, key: key}, nil
}

var (
	errUnauthorized = httpx.Error{Code: http.StatusUnauthorized, Empty: true, Msg: "no session"}
	errNoToken      = httpx.Error{Code: http.StatusUnauthorized, Empty: true, Msg: "no token could be obtained"}
	errForbidden    = httpx.Error{Code: http.StatusForbidden, Msg: "the route's authorization policy denies this request"}
)

func storeDown(err error) error {
	return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
}

func providerDown(err error) error {
	return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "the identity provider is unavailable; try again shortly", Err: err}
}

// Token implements proxy.Bearer. A route with a policy is evaluated
// against the caller's session: no session (anonymous callers of
// user_or_none, user_or_client, client and none routes) means denied.
func (rt *Route) Token(r *http.Request) (string, error) {
	tok, _, err := rt.token(r)
	return tok, err
}

// token is Token, with the session whose access token it is; nil for a
// client-credentials or exchanged token, or none.
func (rt *Route) token(r *http.Request) (string, *session.Session, error) {
	if rt.policy == nil {
		switch rt.mode {
		case None:
			return "", nil, nil
		case Client:
			return rt.src.clientTokenNoSession(r.Context(), rt)
		}
	}
	s, err := rt.src.sessions.Load(r)
	if err == nil {
		if info := httpx.InfoOf(r.Context()); info != nil {
			info.Session = s.Handle // for the access log: no second lookup
		}
		if rt.policy != nil && !rt.policy.allows(r, s) {
			return "", nil, errForbidden
		}
	}
	if errors.Is(err, session.ErrNotFound) {
		if rt.policy != nil && rt.mode != User && rt.mode != Exchange {
			return "", nil, errForbidden
		}
		switch rt.mode {
		case UserOrNone:
			return "", nil, nil
		case UserOrClient:
			return rt.src.clientTokenNoSession(r.Context(), rt)
		}
		return "", nil, errUnauthorized
	}
	if err != nil {
		return "", nil, storeDown(err)
	}
	if err := rt.src.sessions.Touch(r.Context(), s); err != nil {
		return "", nil, storeDown(err)
	}
	switch rt.mode {
	case None:
		return "", nil, nil
	case Client:
		return rt.src.clientTokenNoSession(r.Context(), rt)
	}
	fresh, err := rt.src.userSession(r.Context(), s)
	if err != nil {
		return "", nil, err
	}
	if rt.mode != Exchange {
		return fresh.AccessToken, fresh, nil
	}
	tok, err := rt.src.exchange(r.Context(), rt, fresh.AccessToken)
	return tok, nil, err
}

// due reports whether a token should be refreshed now.
func (s *Source) due(expiry, obtained, now time.Time) bool {
	if expiry.IsZero() {
		return false
	}
	before := s.refreshBefore
	if !obtained.IsZero() {
		if half := expiry.Sub(obtained) / 2; before > half {
			before = half
		}
	}
	return !now.Before(expiry.Add(-before))
}

// UserToken returns a valid access token for sess, refreshing it first when
// it is due. The caller's ctx bounds only its own wait.
func (s *Source) UserToken(ctx context.Context, sess *session.Session) (string, error) {
	fresh, err := s.userSession(ctx, sess)
	if err != nil {
		return "", err
	}
	return fresh.AccessToken, nil
}

// userSession is UserToken returning the session whose access token is
// the one to use: sess, or sess refreshed (with the DPoP key a refresh may
// have given it).
func (s *Source) userSession(ctx context.Context, sess *session.Session) (*session.Session, error) {
	now := s.now()
	if !s.due(sess.AccessExpiry, sess.AccessObtained, now) {
		return sess, nil
	}
	valid := sess.AccessToken != "" && now.Before(sess.AccessExpiry.Add(-expiryMargin))
	if sess.RefreshToken == "" {
		if valid {
			return sess, nil
		}
		return nil, errNoToken
	}
	lockKey := s.sessions.LockKey(sess.ID)
	if fresh := s.recentFor(lockKey, sess.RefreshToken, now); fresh != nil {
		c := *fresh
		if err := s.sessions.Save(ctx, &c); err != nil {
			return nil, err
		}
		return fresh, nil
	}
	if s.backingOff(lockKey, now) {
		if valid {
			return sess, nil
		}
		return nil, providerDown(errors.New("refresh backing off after a provider failure"))
	}
	start := time.Now()
	ctx, span := s.tracer.Start(ctx, "cloakroom.token.refresh")
	defer span.End()
	ch := s.flight.DoChan(lockKey, func() (any, error) {
		return s.refresh(sess, lockKey)
	})
	select {
	case res := <-ch:
		span.SetAttributes(attribute.Bool("cloakroom.refresh.shared", res.Shared))
		if res.Err != nil {
			span.SetStatus(codes.Error, "refresh failed")
		}
		s.onRefresh(refreshOutcome(res.Err), time.Since(start))
		if (errors.Is(res.Err, errDead) || errors.Is(res.Err, errUntrusted)) && s.sessions.Stateless() {
			// Cookie mode: the refresh could not delete what only this
			// response can expire.
			_ = s.sessions.Delete(ctx, sess)
		}
		if res.Err != nil {
			if valid && isTransient(res.Err) {
				return sess, nil
			}
			return nil, res.Err
		}
		fresh := res.Val.(*session.Session)
		if s.sessions.Stateless() {
			// Cookie mode: every response of the burst carries the new cookie.
			c := *fresh
			if err := s.sessions.Save(ctx, &c); err != nil {
				return nil, err
			}
		}
		return fresh, nil
	case <-ctx.Done():
		return nil, httpx.Error{Code: http.StatusServiceUnavailable, Msg: "gave up waiting for a token refresh", Err: ctx.Err()}
	}
}

// errDead says the refresh token was rejected for good; errUntrusted that
// the provider's answer to the refresh failed validation. Both end the
// session.
var (
	errDead      = httpx.Error{Code: http.StatusUnauthorized, Empty: true, Msg: "refresh token rejected; session ended"}
	errUntrusted = httpx.Error{Code: http.StatusUnauthorized, Empty: true, Msg: "the provider's refresh answer failed validation; session ended"}
)

func isTransient(err error) bool {
	var he httpx.Error
	return errors.As(err, &he) && he.Code == http.StatusServiceUnavailable
}

// refresh runs once per session at a time in this process (single flight)
// and, through the Locker, across processes. It is detached from any one
// request: waiters come and go with their own contexts. It returns the
// refreshed session.
func (s *Source) refresh(cur *session.Session, lockKey string) (*session.Session, error) {
	lockTTL := 3 * s.timeout
	ctx, cancel := context.WithTimeout(context.Background(), lockTTL)
	defer cancel()
	unlock, err := s.locker.Lock(ctx, lockKey, lockTTL)
	if err != nil {
		return nil, providerDown(fmt.Errorf("refresh lock: %w", err))
	}
	defer unlock()

	sess := new(session.Session)
	*sess = *cur
	if s.sessions.Stateless() {
		// A request that checked before the previous flight remembered
		// its result may have started this one with the same old token.
		if fresh := s.recentFor(lockKey, cur.RefreshToken, s.now()); fresh != nil {
			return fresh, nil
		}
	} else {
		// Another holder may have refreshed while we waited for the lock.
		sess, err = s.sessions.Get(ctx, cur.ID)
		if errors.Is(err, session.ErrNotFound) {
			return nil, errUnauthorized
		}
		if err != nil {
			return nil, storeDown(err)
		}
		if !s.due(sess.AccessExpiry, sess.AccessObtained, s.now()) {
			return sess, nil
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, s.timeout)
	defer rcancel()
	key, err := s.refreshKey(sess)
	if err != nil {
		return nil, err
	}
	t, err := s.oidc.Refresh(oidc.WithDPoPKey(rctx, key), sess.RefreshToken, sess.Subject, s.params)
	if err != nil {
		return nil, s.refreshFailed(ctx, sess, lockKey, err)
	}
	s.succeed(lockKey)
	Apply(sess, t, s.now())
	if s.sessions.Stateless() {
		// Remembered before the flight ends, so a request that arrives
		// with the old cookie right after it finds the result instead of
		// spending the rotated-away refresh token.
		s.remember(lockKey, cur.RefreshToken, sess)
	} else if err := s.sessions.Save(ctx, sess); err != nil {
		return nil, storeDown(err)
	}
	return sess, nil
}

// refreshFailed settles a refresh of sess that failed with err, as the
// package documentation describes, and returns the error for the request:
// an untrusted answer or a dead refresh token ends the session (and the
// first revokes the refresh token too); a refusal of the client's
// credentials or a provider failure backs the session's refreshes off.
func (s *Source) refreshFailed(ctx context.Context, sess *session.Session, lockKey string, err error) error {
	switch {
	case errors.Is(err, oidc.ErrUntrusted):
		// Refresh revoked what the answer carried; the refresh token
		// that asked for it goes too.
		s.log.Warn("the provider's refresh answer failed validation; session ended", "error", err)
		s.revoke(ctx, sess.RefreshToken)
		return s.endRefreshed(ctx, sess, errUntrusted)
	case oidc.IsDeadGrant(err):
		s.log.Info("refresh token rejected; session ended", "error", err)
		return s.endRefreshed(ctx, sess, errDead)
	case oidc.IsClientAuthFailure(err):
		// oidc logged it at error level, with the fix.
		s.fail(lockKey)
		return providerDown(err)
	default:
		s.fail(lockKey)
		s.log.Warn("token refresh failed; will retry", "error", err)
		return providerDown(err)
	}
}

// refreshOutcome names the outcome of a refresh for Options.OnRefresh.
func refreshOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errDead):
		return "dead_token"
	case errors.Is(err, errUntrusted):
		return "untrusted"
	case oidc.IsClientAuthFailure(err):
		return "client_auth"
	default:
		return "idp_error"
	}
}

// endRefreshed deletes sess, whose refresh failed for good, and returns
// why. In cookie mode only the response can delete the session: UserToken
// does.
func (s *Source) endRefreshed(ctx context.Context, sess *session.Session, why error) error {
	if !s.sessions.Stateless() {
		if err := s.sessions.Delete(ctx, sess); err != nil {
			return storeDown(err)
		}
	}
	return why
}

// revoke revokes a refresh token at the provider, bounded by the refresh
// timeout; a failure is logged, never returned.
func (s *Source) revoke(ctx context.Context, refreshToken string) {
	if refreshToken == "" {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if err := s.oidc.Revoke(rctx, refreshToken, "refresh_token"); err != nil {
		s.log.Warn("refresh token revocation failed", "error", err)
	}
}

// Apply copies fresh tokens into sess. A response without a refresh token
// keeps the old one; one without an ID token keeps the old ID token and
// claims; one whose userinfo call was missed (t.UserInfoMissed) lays the
// new ID token's claims over the old claims. An unknown expiry counts as
// DefaultLifetime.
func Apply(sess *session.Session, t *oidc.Tokens, now time.Time) {
	sess.AccessToken = t.AccessToken
	sess.TokenType = t.TokenType
	sess.AccessObtained = now
	sess.AccessExpiry = t.Expiry
	if sess.AccessExpiry.IsZero() {
		sess.AccessExpiry = now.Add(DefaultLifetime)
	}
	if t.RefreshToken != "" {
		sess.RefreshToken = t.RefreshToken
	}
	if t.IDToken != "" {
		sess.IDToken = t.IDToken
		if t.UserInfoMissed {
			claims := make(map[string]any, len(sess.Claims)+len(t.Claims))
			maps.Copy(claims, sess.Claims)
			maps.Copy(claims, t.Claims)
			sess.Claims = claims
		} else {
			sess.Claims = t.Claims
		}
		if t.SID != "" {
			sess.IdPSessionID = t.SID
		}
	}
	if len(t.Scopes) > 0 {
		sess.Scopes = t.Scopes
	}
}

func (s *Source) recentFor(key, refresh string, now time.Time) *session.Session {
	if !s.sessions.Stateless() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recent[key]
	if !ok || now.Sub(r.at) > recentGrace || r.oldRefresh != sha256.Sum256([]byte(refresh)) {
		return nil
	}
	return r.fresh
}

func (s *Source) remember(key, oldRefresh string, fresh *session.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recent) >= maxCache {
		now := s.now()
		for k, r := range s.recent {
			if now.Sub(r.at) > recentGrace {
				delete(s.recent, k)
			}
		}
		if len(s.recent) >= maxCache {
			clear(s.recent)
		}
	}
	s.recent[key] = recentRefresh{oldRefresh: sha256.Sum256([]byte(oldRefresh)), fresh: fresh, at: s.now()}
}

func (s *Source) backingOff(key string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.backoff[key]
	return ok && now.Before(b.until)
}

func (s *Source) fail(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.backoff[key]
	b.step = min(max(2*b.step, time.Second), 30*time.Second)
	b.until = s.now().Add(b.step)
	if len(s.backoff) >= maxCache {
		s.pruneBackoffLocked()
	}
	s.backoff[key] = b
}

func (s *Source) succeed(key string) {
	s.mu.Lock()
	delete(s.backoff, key)
	s.mu.Unlock()
}

// pruneBackoffLocked drops expired backoffs; if the table is still full
// it empties it.
func (s *Source) pruneBackoffLocked() {
	now := s.now()
	for k, b := range s.backoff {
		if !now.Before(b.until) {
			delete(s.backoff, k)
		}
	}
	if len(s.backoff) >= maxCache {
		clear(s.backoff)
	}
}

// cached returns a cached token that is not yet due by this Source's
// clock and RefreshBefore.
func (s *Source) cached(key string) (string, bool) {
	c, ok := s.cache.get(key)
	if !ok || s.due(c.expiry, c.obtained, s.now()) {
		return "", false
	}
	return c.token, true
}

func (s *Source) store(key string, t *oidc.Tokens) {
	now := s.now()
	exp := t.Expiry
	if exp.IsZero() {
		exp = now.Add(DefaultLifetime)
	}
	s.cache.put(key, cachedTok{token: t.AccessToken, expiry: exp, obtained: now}, now)
}

// fetch gets a token through the cache's single-flight group: one call to
// the provider per key at a time, whichever Source sharing the cache asks;
// waiters leave with their own ctx.
func (s *Source) fetch(ctx context.Context, key string, get func(context.Context) (*oidc.Tokens, error)) (string, error) {
	if tok, ok := s.cached(key); ok {
		return tok, nil
	}
	name, _, _ := strings.Cut(key, "|")
	ctx, span := s.tracer.Start(ctx, "cloakroom.token."+name)
	defer span.End()
	ch := s.cache.flight.DoChan(key, func() (any, error) {
		if tok, ok := s.cached(key); ok {
			return tok, nil
		}
		fctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		t, err := get(fctx)
		if err != nil {
			var g *oidc.GrantError
			if errors.As(err, &g) && g.HTTP < 500 || errors.Is(err, oidc.ErrUntrusted) {
				return "", httpx.Error{Code: http.StatusUnauthorized, Empty: true, Msg: "token request refused", Err: err}
			}
			return "", providerDown(err)
		}
		s.store(key, t)
		return t.AccessToken, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	case <-ctx.Done():
		return "", httpx.Error{Code: http.StatusServiceUnavailable, Msg: "gave up waiting for a token", Err: ctx.Err()}
	}
}

func (s *Source) clientToken(ctx context.Context, rt *Route) (string, error) {
	return s.fetch(ctx, "client|"+rt.key, func(ctx context.Context) (*oidc.Tokens, error) {
		return s.service.ClientCredentials(oidc.WithDPoPKey(ctx, s.dpop), rt.params)
	})
}

// exchange trades the user's token; the cache key holds a hash of it, so a
// refreshed user token gets a fresh exchange and no raw token is a key.
func (s *Source) exchange(ctx context.Context, rt *Route, userToken string) (string, error) {
	h := sha256.Sum256([]byte(userToken))
	return s.fetch(ctx, "exchange|"+hex.EncodeToString(h[:])+"|"+rt.key, func(ctx context.Context) (*oidc.Tokens, error) {
		return s.service.ExchangeToken(oidc.WithDPoPKey(ctx, s.dpop), userToken, rt.params)
	})
}

// End ends a session found by handle (back-channel logout, operators):
// its refresh token is revoked at the provider, bounded in time, and a
// revocation failure is logged, never keeps the session alive.
func (s *Source) End(ctx context.Context, sess *session.Session) error {
	if sess.RefreshToken != "" {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		err := s.oidc.Revoke(rctx, sess.RefreshToken, "refresh_token")
		cancel()
		if err != nil {
			s.log.Warn("refresh token revocation failed", "error", err)
		}
	}
	if sess.Handle != "" {
		return s.sessions.DeleteHandle(ctx, sess.Handle)
	}
	return s.sessions.Delete(ctx, sess)
}
