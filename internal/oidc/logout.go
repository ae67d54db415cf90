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
	Expiry            time.Time
}

// VerifyLogoutToken checks a back-channel logout token: signature against
// the provider's keys with an allow-listed algorithm, iss, aud (our client
// id), exp, iat (present, not in the future, not older than LogoutMaxAge),
// events holding the back-channel logout event as an object, no nonce, jti,
// and sub or sid.
func (c *Client) VerifyLogoutToken(ctx context.Context, raw string) (*LogoutToken, error) {
	d, err := c.get()
	if err != nil {
		return nil, err
	}
	lt, err := d.verifier.VerifyLogout(c.ctx(ctx), raw)
	if err != nil {
		return nil, fmt.Errorf("logout token: %w", err)
	}
	var claims struct {
		IAT    *json.Number               `json:"iat"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := lt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("logout token claims: %w", err)
	}
	now := c.now()
	if claims.IAT == nil {
		return nil, errors.New("logout token: no iat")
	}
	iat, err := claims.IAT.Int64()
	if err != nil {
		return nil, errors.New("logout token: iat is not a number")
	}
	issued := time.Unix(iat, 0)
	if issued.After(now.Add(ClockSkew)) {
		return nil, errors.New("logout token: issued in the future")
	}
	if issued.Before(now.Add(-LogoutMaxAge)) {
		return nil, errors.New("logout token: too old")
	}
	ev, ok := claims.Events[BackchannelLogoutEvent]
	if !ok || !bytes.HasPrefix(bytes.TrimSpace(ev), []byte("{")) {
		return nil, errors.New("logout token: events has no back-channel logout object")
	}
	return &LogoutToken{Subject: lt.Subject, SID: lt.SessionID, JTI: lt.TokenID, Expiry: lt.Expiry}, nil
}
