package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Grants, as Options.OnClientAuthFailure and log lines name them.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
	grantClientCredentials = "client_credentials"
	grantTokenExchange     = "token_exchange"
)

// IsClientAuthFailure reports whether err says the token endpoint refused
// the client itself rather than its grant: an invalid_client error (RFC
// 6749 §5.2), or any 401 answer. That is a configuration fault, the client
// id, secret or key not being those registered at the provider: retrying
// cannot help, and neither can a new login, whose code exchange needs the
// same credentials.
func IsClientAuthFailure(err error) bool {
	var g *GrantError
	return errors.As(err, &g) && (g.Code == "invalid_client" || g.HTTP == http.StatusUnauthorized)
}

// IsDeadGrant reports whether err says the grant (an authorization code or
// a refresh token) will never be accepted: any 400 answer whatever its
// error code, or invalid_grant or unauthorized_client whatever the status,
// unless IsClientAuthFailure or IsProofRefusal. Dex v2.45.1 answers a
// spent or expired refresh token with 400 invalid_request, not
// invalid_grant.
//
// A 400 use_dpop_nonce or invalid_dpop_proof refuses the DPoP proof, not
// the grant (RFC 9449 §5, §8): on the client's own requests the nonce was
// already retried once (postDPoP), so a second demand, or a refused
// proof, is the provider's or the gateway's trouble, and the refresh token
// may still be good. Other refusals (403, 404, 429, 5xx), transport errors
// and timeouts are not dead grants either: they say nothing about the
// grant.
func IsDeadGrant(err error) bool {
	var g *GrantError
	if !errors.As(err, &g) || IsClientAuthFailure(err) || IsProofRefusal(err) {
		return false
	}
	return g.HTTP == http.StatusBadRequest || g.Code == "invalid_grant" || g.Code == "unauthorized_client"
}

// refused returns err, having first logged it at error level and told
// Options.OnClientAuthFailure when it is a client authentication failure:
// only the operator can fix that, so it must not drown among the users'
// failed refreshes.
func (c *Client) refused(grant string, err error) error {
	if IsClientAuthFailure(err) {
		c.log.Error("the identity provider does not accept the client's credentials: check the client id and the client secret or key configured (oidc.client_id, oidc.client_secret, or oidc.service_client) against the client registered at the provider",
			"grant", grant, "client_id", c.opts.ClientID, "error", err)
		if c.opts.OnClientAuthFailure != nil {
			c.opts.OnClientAuthFailure(grant)
		}
	}
	return err
}

// checkTokenType refuses a token response whose token_type is not the one
// the client uses (Options.TokenType), compared without regard to case
// (RFC 6749 §5.1): a client must not use a token whose type it does not
// understand (§7.1), and a response with no type is not a valid one.
func (c *Client) checkTokenType(tok *oauth2.Token) error {
	want := c.tokenType()
	switch {
	case tok.TokenType == "":
		return fmt.Errorf("token response has no token_type, want %q: %w", want, ErrUntrusted)
	case !strings.EqualFold(tok.TokenType, want):
		return fmt.Errorf("token_type %q, want %q: %w", clip(tok.TokenType), want, ErrUntrusted)
	}
	return nil
}

// Discard revokes, best effort, the refresh and access tokens of t, which
// the caller could not keep (a session that could not be saved): tokens
// nobody holds must not stay valid at the provider. It outlives ctx's
// cancellation, bounded by a few seconds; failures are logged without the
// tokens.
func (c *Client) Discard(ctx context.Context, t *Tokens) {
	c.discard(ctx, &oauth2.Token{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken})
}

// discardTimeout bounds the revocations of discard.
const discardTimeout = 5 * time.Second

// discard revokes, best effort and at once, the refresh and access tokens
// of an answer that was refused. A failure is logged, without the tokens.
// It outlives ctx's cancellation, bounded by discardTimeout.
func (c *Client) discard(ctx context.Context, tok *oauth2.Token) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), discardTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for hint, token := range map[string]string{"refresh_token": tok.RefreshToken, "access_token": tok.AccessToken} {
		if token == "" {
			continue
		}
		wg.Go(func() {
			if err := c.Revoke(ctx, token, hint); err != nil {
				c.log.Warn("could not revoke a token of a refused provider answer", "token_type_hint", hint, "error", err)
			}
		})
	}
	wg.Wait()
}
