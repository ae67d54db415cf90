package oidc

// The UserInfo endpoint, OpenID Connect Core 1.0 §5.3. Some providers put
// the profile (email, name, groups) there and not in the ID token: Authelia
// from 4.39, Entra ID for many claims, Okta's org authorization server, and
// any provider following §5.4's advice for claims requested by scope when
// an access token is issued. With Options.UserInfo, the client fetches it
// after a code exchange, and after a refresh that brings a new ID token:
//
//   - GET userinfo_endpoint (from discovery; required there when
//     Options.UserInfo is set, and checked like the other endpoints) with
//     Authorization: Bearer <the new access token>, bounded by
//     userInfoTimeout and, like every answer, by MaxBodyBytes.
//   - 200 with application/json: a JSON object of claims. 200 with
//     application/jwt (§5.3.2): a JWS verified like an ID token: compact
//     serialisation, an allow-listed algorithm, a key of the provider's
//     JWKS and nothing else. §5.3.2 says a signed answer SHOULD carry iss
//     and aud: both are optional here (the answer comes straight from the
//     provider over the connection the access token went through), but
//     when present iss must be the issuer and aud must name our client id.
//     Encrypted (JWE) answers are not supported.
//   - Its sub MUST equal the ID token's (§5.3.2, §5.3.4), else the answer
//     is for someone else.
//   - Its claims are merged into the ID token's: for a name both carry, the
//     userinfo value wins (it is the fresher profile), except for
//     protectedClaims, which describe the ID token and the login rather
//     than the user: those always come from the ID token, and a userinfo
//     answer never adds them.
//
// Failures: at login any failure fails the login (Exchange revokes the
// tokens it got and returns the error; the callback shows its 400 page and
// creates no session). On
// refresh, an answer that names another sub, or a signed answer that does
// not verify (another issuer or audience, a bad signature), wraps
// ErrUntrusted: Refresh revokes the new tokens and the session must end.
// Any other failure (5xx, timeout,
// transport, an unreadable answer) leaves the refreshed tokens good: it is
// logged as a warning, and Tokens.UserInfoMissed tells the caller to keep
// the userinfo claims it had.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// userInfoTimeout bounds one userinfo call, whatever the caller's context
// allows.
const userInfoTimeout = 10 * time.Second

// protectedClaims are the claims a userinfo answer never sets in the merged
// claims: the ID token's values win, and when the ID token has none the
// userinfo's are dropped.
var protectedClaims = []string{"iss", "aud", "sub", "sid", "exp", "iat", "nonce", "auth_time", "azp"}

// userInfoEndpoint returns the userinfo endpoint to use: "" when
// Options.UserInfo is off, else the discovered one, which must be there
// and be a URL like every other endpoint.
func (c *Client) userInfoEndpoint(m *metadata) (string, error) {
	if !c.opts.UserInfo {
		return "", nil
	}
	if m.UserInfo == "" {
		return "", errors.New("metadata has no userinfo_endpoint, which oidc.userinfo: true needs: turn it off, or use a provider that has one")
	}
	if err := checkEndpoint(m.UserInfo, strings.HasPrefix(c.opts.Issuer, "https://")); err != nil {
		return "", fmt.Errorf("userinfo_endpoint: %w", err)
	}
	return m.UserInfo, nil
}

// addUserInfo merges the userinfo answer for t's access token into t.Claims
// when Options.UserInfo is set and t carries a new ID token. See the file's
// comment for what fails and how.
//
// A mediated refresh (RefreshWithProof) makes no userinfo call: its access
// token is bound to the browser's key, which the gateway cannot sign with,
// so the call would only fail. t.UserInfoMissed is set instead, and the
// session keeps the userinfo claims it had under the new ID token's.
func (c *Client) addUserInfo(ctx context.Context, d *discovered, t *Tokens, refresh bool) error {
	if !c.opts.UserInfo || t.IDToken == "" {
		return nil
	}
	if mediated(ctx) {
		t.UserInfoMissed = true
		return nil
	}
	info, err := c.fetchUserInfo(ctx, d, t.AccessToken, t.Subject)
	switch {
	case err == nil:
		t.Claims = mergeClaims(t.Claims, info)
		return nil
	case refresh && !errors.Is(err, ErrUntrusted):
		c.log.Warn("userinfo call after a refresh failed; the session keeps its previous userinfo claims", "error", err)
		t.UserInfoMissed = true
		return nil
	}
	return err
}

// fetchUserInfo calls the userinfo endpoint and returns its claims, whose
// sub is subject.
func (c *Client) fetchUserInfo(ctx context.Context, d *discovered, accessToken, subject string) (map[string]any, error) {
	if d.userInfo == "" {
		return nil, errors.New("userinfo: the provider has no userinfo endpoint")
	}
	if accessToken == "" || subject == "" {
		return nil, errors.New("userinfo: no access token or subject to ask with")
	}
	ctx, cancel := context.WithTimeout(ctx, userInfoTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.userInfo, nil)
	if err != nil {
		return nil, fmt.Errorf("userinfo request: %w", err)
	}
	req.Header.Set("Authorization", authScheme(ctx)+" "+accessToken)
	req.Header.Set("Accept", "application/json, application/jwt")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("userinfo: read the answer: %w", err)
	}
	// The body is the provider's: never quoted.
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("userinfo endpoint answered %d", resp.StatusCode)
	}
	var claims map[string]any
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case mt == "application/jwt":
		if claims, err = c.verifyUserInfoJWT(ctx, d, strings.TrimSpace(string(body))); err != nil {
			return nil, err
		}
	case mt == "application/json" || mt == "" || strings.HasSuffix(mt, "+json"):
		if err := json.Unmarshal(body, &claims); err != nil || claims == nil {
			return nil, errors.New("userinfo: the answer is not a JSON object")
		}
	default:
		return nil, fmt.Errorf("userinfo: the answer's content type is %q, want application/json or application/jwt", clip(mt))
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return nil, errors.New("userinfo: the answer has no sub")
	}
	if sub != subject {
		return nil, fmt.Errorf("userinfo: the answer is for another subject than the id token: %w", ErrUntrusted)
	}
	return claims, nil
}

// verifyUserInfoJWT checks a signed userinfo answer (OIDC Core §5.3.2)
// against the provider's JWKS, as ID tokens are, and returns its claims.
// A JWKS that could not be reached does not make the answer untrusted;
// anything else that fails does, a key id the JWKS does not hold too (the
// ID token of the same answer was just verified with the provider's
// current keys).
func (c *Client) verifyUserInfoJWT(ctx context.Context, d *discovered, raw string) (map[string]any, error) {
	payload, err := d.keys.VerifySignature(ctx, raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) || ctx.Err() != nil {
			return nil, fmt.Errorf("userinfo jwt: %w", err)
		}
		return nil, fmt.Errorf("userinfo jwt: %w: %w", err, ErrUntrusted)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return nil, fmt.Errorf("userinfo jwt: the payload is not a JSON object: %w", ErrUntrusted)
	}
	if iss, ok := claims["iss"]; ok && iss != c.opts.Issuer {
		return nil, fmt.Errorf("userinfo jwt: iss is not the issuer: %w", ErrUntrusted)
	}
	if aud, ok := claims["aud"]; ok && !audienceHas(aud, c.opts.ClientID) {
		return nil, fmt.Errorf("userinfo jwt: aud does not name our client id: %w", ErrUntrusted)
	}
	return claims, nil
}

// audienceHas reports whether an aud claim, a string or an array of
// strings, names id.
func audienceHas(aud any, id string) bool {
	switch a := aud.(type) {
	case string:
		return a == id
	case []any:
		return slices.Contains(a, any(id))
	}
	return false
}

// mergeClaims returns the ID token's claims with the userinfo answer's laid
// over them, protectedClaims excepted.
func mergeClaims(id, info map[string]any) map[string]any {
	out := make(map[string]any, len(id)+len(info))
	for k, v := range id {
		out[k] = v
	}
	for k, v := range info {
		if !slices.Contains(protectedClaims, k) {
			out[k] = v
		}
	}
	return out
}
