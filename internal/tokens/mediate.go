package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/session"
)

// errNoRefreshToken answers a mediation for a session the provider gave no
// refresh token.
var errNoRefreshToken = httpx.Error{Code: http.StatusConflict, Msg: "this session has no refresh token to obtain a token for the browser with"}

// Mediate obtains an access token for the browser (the token-mediating
// mode, POST /bff/token): a refresh_token grant with sess's refresh token,
// p, and proof, a DPoP proof made by the browser's own key whose
// thumbprint is jkt (oidc.RefreshWithProof), so the new token is bound to
// that key. It returns that token, which the session does not keep, and
// the DPoP-Nonce the provider sent, if any.
//
// The grant spends the session's refresh token, so it runs under the same
// per-session lock as the refreshes of UserToken: a mediation and a
// proxied request's refresh never present one refresh token twice. Under
// the lock the session is read again (server-side stores), so the refresh
// token used is the latest. The rotated refresh token the answer carries,
// and a new ID token (verified as any refreshed one), go into the session;
// its own access token stays as it was, and the session keeps working.
//
// Failures are settled as for any refresh (see the package documentation):
// a dead refresh token or an untrusted answer ends the session (401), a
// provider failure is 503. A refusal of the proof itself (use_dpop_nonce,
// invalid_dpop_proof; oidc.IsProofRefusal) is returned as the provider's
// *oidc.GrantError and leaves the session as it was: only the browser can
// sign again. The caller's ctx bounds the wait for the lock; once the
// grant is sent it runs to its end (at most RefreshTimeout), so a browser
// that goes away cannot lose the session a rotated refresh token.
func (s *Source) Mediate(ctx context.Context, sess *session.Session, p oidc.TokenParams, proof, jkt string) (*oidc.Tokens, string, error) {
	if sess.RefreshToken == "" {
		return nil, "", errNoRefreshToken
	}
	start := time.Now()
	ctx, span := s.tracer.Start(ctx, "cloakroom.token.mediate")
	defer span.End()
	lockKey := s.sessions.LockKey(sess.ID)
	lockTTL := 3 * s.timeout
	lctx, cancel := context.WithTimeout(ctx, lockTTL)
	defer cancel()
	unlock, err := s.locker.Lock(lctx, lockKey, lockTTL)
	if err != nil {
		return nil, "", providerDown(fmt.Errorf("refresh lock: %w", err))
	}
	defer unlock()

	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), lockTTL)
	defer wcancel()
	cur := new(session.Session)
	*cur = *sess
	if !s.sessions.Stateless() {
		// A refresh may have rotated the refresh token while we waited.
		if cur, err = s.sessions.Get(wctx, sess.ID); errors.Is(err, session.ErrNotFound) {
			return nil, "", errUnauthorized
		} else if err != nil {
			return nil, "", storeDown(err)
		}
	} else if fresh := s.recentFor(lockKey, sess.RefreshToken, s.now()); fresh != nil {
		*cur = *fresh
	}
	if s.backingOff(lockKey, s.now()) {
		return nil, "", providerDown(errors.New("refresh backing off after a provider failure"))
	}

	rctx, rcancel := context.WithTimeout(wctx, s.timeout)
	defer rcancel()
	t, nonce, err := s.oidc.RefreshWithProof(rctx, cur.RefreshToken, cur.Subject, p, proof, jkt)
	if oidc.IsProofRefusal(err) {
		return nil, nonce, err
	}
	if err != nil {
		err = s.refreshFailed(wctx, cur, lockKey, err)
		s.onRefresh(refreshOutcome(err), time.Since(start))
		if (errors.Is(err, errDead) || errors.Is(err, errUntrusted)) && s.sessions.Stateless() {
			_ = s.sessions.Delete(ctx, cur) // cookie mode: only the response can end it
		}
		return nil, nonce, err
	}
	s.succeed(lockKey)
	s.onRefresh("ok", time.Since(start))
	spent := cur.RefreshToken
	keepAccess(cur, t, s.now())
	if s.sessions.Stateless() {
		// Requests still carrying the old cookie must not spend the
		// rotated-away refresh token; UserToken hands them this session,
		// whose access token must then still be good to use.
		if !s.due(cur.AccessExpiry, cur.AccessObtained, s.now()) {
			s.remember(lockKey, spent, cur)
		}
		c := *cur
		if err := s.sessions.Save(ctx, &c); err != nil {
			return nil, nonce, err
		}
	} else if err := s.sessions.Save(wctx, cur); err != nil {
		return nil, nonce, storeDown(err)
	}
	return t, nonce, nil
}

// keepAccess applies a mediated answer to sess as Apply does, but keeps
// the session's own access token, its type, times and scopes: the new
// access token is the browser's, bound to the browser's key.
func keepAccess(sess *session.Session, t *oidc.Tokens, now time.Time) {
	at, typ, obtained, expiry, scopes := sess.AccessToken, sess.TokenType, sess.AccessObtained, sess.AccessExpiry, sess.Scopes
	Apply(sess, t, now)
	sess.AccessToken, sess.TokenType, sess.AccessObtained, sess.AccessExpiry, sess.Scopes = at, typ, obtained, expiry, scopes
}
