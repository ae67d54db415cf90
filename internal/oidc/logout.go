package oidc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// BackchannelLogoutEvent is the member a logout token's events claim must
// have (OIDC Back-Channel Logout 1.0).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutMaxAge bounds how old a logout token's iat may be.
const LogoutMaxAge = 10 * time.Minute

// LogoutToken is a verified logout token.
type LogoutToken struct {
	Subject, SID, JTI string
	// Expiry is when the token stops being accepted, clock skew aside:
	// the earlier of its exp and its iat plus LogoutMaxAge, or the latter
	// when it has no exp. A replay cache must keep its JTI at least until
	// Expiry plus the client's ClockSkew.
	Expiry time.Time
}

// VerifyLogoutToken checks a back-channel logout token: signature against
// the provider's keys with an allow-listed algorithm, iss, aud (our client
// id), iat (present, at most the clock skew in the future, not older than
// LogoutMaxAge), exp and nbf when present (with the clock skew), events
// holding the back-channel logout event as an object, no nonce, jti, and
// sub or sid.
//
// A token without exp is accepted, its iat bounding its life: Ory Hydra
// v2.3.0 sends logout tokens with aud, events, iat, iss, jti and sid only,
// although Back-Channel Logout 1.0 §2.4 requires exp. go-oidc's
// VerifyLogout refuses those, so the token is verified here with the ID
// token verifier (signature, iss, aud; expiry checks off) and the logout
// token rules that VerifyLogout would apply.
func (c *Client) VerifyLogoutToken(ctx context.Context, raw string) (*LogoutToken, error) {
	d, err := c.get()
	if err != nil {
		return nil, err
	}
	lt, err := d.verifier.Verify(c.ctx(ctx), raw)
	if err != nil {
		return nil, fmt.Errorf("logout token: %w", err)
	}
	var claims struct {
		tokenTimes
		JTI    string                     `json:"jti"`
		SID    string                     `json:"sid"`
		Nonce  json.RawMessage            `json:"nonce"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := lt.Claims(&claims); err != nil {
		return nil, errors.New("logout token: jti, sid, events, exp, iat or nbf of the wrong type")
	}
	ev, ok := claims.Events[BackchannelLogoutEvent]
	if !ok || !bytes.HasPrefix(bytes.TrimSpace(ev), []byte("{")) {
		return nil, errors.New("logout token: events has no back-channel logout object")
	}
	// Whatever its value: a nonce would let an ID token pass as a logout
	// token.
	if claims.Nonce != nil {
		return nil, errors.New("logout token: must not contain a nonce")
	}
	if claims.JTI == "" {
		return nil, errors.New("logout token: no jti")
	}
	if lt.Subject == "" && claims.SID == "" {
		return nil, errors.New("logout token: neither sub nor sid")
	}
	exp, iat, err := c.checkTimes(claims.tokenTimes, false)
	if err != nil {
		return nil, fmt.Errorf("logout token: %w", err)
	}
	if iat.Before(c.now().Add(-LogoutMaxAge)) {
		return nil, errors.New("logout token: too old")
	}
	until := iat.Add(LogoutMaxAge)
	if exp.IsZero() {
		c.log.DebugContext(ctx, "logout token has no exp; its iat bounds its life", "max_age", LogoutMaxAge.String())
	} else if exp.Before(until) {
		until = exp
	}
	return &LogoutToken{Subject: lt.Subject, SID: claims.SID, JTI: claims.JTI, Expiry: until}, nil
}
