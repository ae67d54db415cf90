package tokens

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/session"
)

// DPoP-bound tokens (RFC 9449), with Options.DPoP set:
//
//   - A user's token is bound to the session's own key
//     (session.Session.DPoPKey, made at /bff/login and sealed in the
//     session): its refreshes are signed by it. A session from before DPoP
//     was turned on has none and a bearer token; its next refresh makes it
//     a key, and the refreshed token is bound to that.
//   - Client-credentials and exchanged tokens are bound to Options.DPoP,
//     one key per gateway process: those tokens are cached per process
//     already, so a key per cached token would add keys and bind nothing
//     more tightly.
//   - Route.DPoPToken hands the proxy and the composites each token with
//     the key that signs its proofs to the upstream; UpstreamNonces keeps
//     the upstreams' nonces.
//
// A session's key is parsed once per process, not per request (parsing
// costs a scalar multiplication and some 76 allocations): dpopKeys caches
// the parsed keys by their bytes, for the store and for cookie mode alike.

// DPoPSigner signs DPoP proofs with the key a token is bound to
// (*oidc.DPoPKey). It is an alias of an interface literal, which
// proxy.DPoPSigner and aggregate.DPoPSigner also are, so Route satisfies
// both packages' DPoPBearer without either importing this one.
type DPoPSigner = interface {
	Proof(htm, htu, accessToken, nonce string, now time.Time) (string, error)
}

// DPoPToken is Token with the key the token is bound to: the session's
// for a user's DPoP token, the process's (Options.DPoP) for a client or
// exchanged token. The key is nil without Options.DPoP, without a token,
// and for a session whose token is a bearer token (token_type Bearer, no
// key: signed in before DPoP was turned on and not refreshed since).
func (rt *Route) DPoPToken(r *http.Request) (string, DPoPSigner, error) {
	tok, s, err := rt.token(r)
	if err != nil || tok == "" || rt.src.dpop == nil {
		return tok, nil, err
	}
	if s == nil {
		return tok, rt.src.dpop, nil
	}
	if len(s.DPoPKey) == 0 || !strings.EqualFold(s.TokenType, oidc.DPoPScheme) {
		return tok, nil, nil
	}
	key, err := rt.src.keys.parse(s.DPoPKey)
	if err != nil {
		return "", nil, fmt.Errorf("session DPoP key: %w", err)
	}
	return tok, key, nil
}

// refreshKey is the key that signs sess's refresh: nil without DPoP, the
// session's own, or a new one, put in sess to be saved with the refreshed
// tokens, for a session that has none.
func (s *Source) refreshKey(sess *session.Session) (*oidc.DPoPKey, error) {
	if s.dpop == nil {
		return nil, nil
	}
	if len(sess.DPoPKey) > 0 {
		k, err := s.keys.parse(sess.DPoPKey)
		if err != nil {
			return nil, fmt.Errorf("session DPoP key: %w", err)
		}
		return k, nil
	}
	k, err := oidc.NewDPoPKey()
	if err != nil {
		return nil, err
	}
	if sess.DPoPKey, err = k.MarshalBinary(); err != nil {
		return nil, err
	}
	return k, nil
}

// clientTokenNoSession is clientToken for token: no session holds it.
func (s *Source) clientTokenNoSession(ctx context.Context, rt *Route) (string, *session.Session, error) {
	tok, err := s.clientToken(ctx, rt)
	return tok, nil, err
}

// maxKeys bounds the parsed-key cache; past it, a random key is dropped
// (it is parsed again when its session comes back).
const maxKeys = 10_000

// dpopKeys caches parsed session keys by their marshalled bytes. The zero
// value is ready.
type dpopKeys struct {
	mu sync.RWMutex
	m  map[string]*oidc.DPoPKey
}

func (c *dpopKeys) parse(b []byte) (*oidc.DPoPKey, error) {
	c.mu.RLock()
	k := c.m[string(b)]
	c.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	k, err := oidc.UnmarshalDPoPKey(b)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*oidc.DPoPKey)
	}
	if len(c.m) >= maxKeys {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[string(b)] = k
	return k, nil
}

// UpstreamNonces keeps each upstream's latest DPoP nonce (RFC 9449 §8, §9)
// for the proxy and the composites, keyed by upstream origin, and
// recognises an upstream's demand for one. It satisfies proxy.DPoPNonces
// and aggregate.DPoPNonces. Safe for concurrent use.
type UpstreamNonces struct{ c *oidc.NonceCache }

// NewUpstreamNonces returns an empty memory of at most
// oidc.DefaultNonceCacheSize upstreams.
func NewUpstreamNonces() *UpstreamNonces {
	return &UpstreamNonces{c: oidc.NewNonceCache(0)}
}

// Nonce returns the latest nonce origin sent, or "".
func (n *UpstreamNonces) Nonce(origin string) string { return n.c.Get(origin) }

// Observe keeps the DPoP-Nonce of an answer from origin and reports
// whether the answer asks for the request again with it: a 401 with a
// DPoP challenge whose error is use_dpop_nonce (oidc.UseDPoPNonce).
func (n *UpstreamNonces) Observe(origin string, status int, h http.Header) bool {
	v := h.Get(oidc.HeaderDPoPNonce)
	if v == "" {
		return false
	}
	n.c.Set(origin, v)
	if status != http.StatusUnauthorized {
		return false
	}
	_, ok := oidc.UseDPoPNonce(status, h, nil)
	return ok
}
