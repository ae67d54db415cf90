package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/oauth2"
)

// The provider side of the token-mediating mode (draft-ietf-oauth-browser-
// based-apps-26 §6.2, "Token-Mediating Backend"): a refresh_token grant
// that carries a DPoP proof (RFC 9449 §5) made by a key the browser holds,
// so that the provider binds the new access token to that key rather than
// to the gateway's. POST /bff/token is its only caller.

// TokenURL is the URL the client posts token requests to: the htu a DPoP
// proof for a token request must name (RFC 9449 §4.2).
func (c *Client) TokenURL() (string, error) {
	d, err := c.get()
	if err != nil {
		return "", err
	}
	return d.tokenEndpoint, nil
}

// RefreshWithProof is Refresh with proof, a DPoP proof for a POST to
// TokenURL made by someone else's key (the SPA's), in the token request's
// DPoP header instead of any proof of the client's own. The client still
// authenticates as itself. The answer is checked as Refresh checks it
// (token_type, a new ID token against subject), but the userinfo endpoint
// is not called (the new access token is bound to a key the client does
// not hold): with Options.UserInfo a new ID token comes with
// Tokens.UserInfoMissed, so the caller keeps its userinfo claims. Besides:
//
//   - the client must expect DPoP-bound tokens (Options.TokenType DPoP):
//     a mediated token is never a bearer token;
//   - when the access token is a JWT with a cnf.jkt claim, that must be
//     jkt, the thumbprint of the proof's key (the caller verified the
//     proof): a provider that bound it to another key is not trusted.
//
// A refused answer wraps ErrUntrusted and its tokens are revoked, as by
// Refresh. nonce is the DPoP-Nonce the provider sent with its answer, if
// any, whatever the outcome: a *GrantError with Code ErrorUseDPoPNonce
// (see IsProofRefusal) asks for the proof to be made again with it. No
// retry is made here: only the proof's owner can sign again.
func (c *Client) RefreshWithProof(ctx context.Context, refreshToken, subject string, p TokenParams, proof, jkt string) (t *Tokens, nonce string, err error) {
	if !strings.EqualFold(c.tokenType(), DPoPScheme) {
		return nil, "", errors.New("refresh with a DPoP proof: the client does not use DPoP-bound tokens")
	}
	if proof == "" || jkt == "" {
		return nil, "", errors.New("refresh with a DPoP proof: no proof")
	}
	m := &mediation{proof: proof}
	t, err = c.Refresh(context.WithValue(ctx, mediationKey{}, m), refreshToken, subject, p)
	nonce = m.responseNonce()
	if err != nil {
		return nil, nonce, err
	}
	if got := tokenJKT(t.AccessToken); got != "" && got != jkt {
		c.discard(ctx, &oauth2.Token{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken})
		return nil, nonce, fmt.Errorf("refresh with a DPoP proof: the access token is bound to another key: %w", ErrUntrusted)
	}
	return t, nonce, nil
}

// IsProofRefusal reports whether err is the provider refusing a DPoP proof
// rather than the grant: use_dpop_nonce or invalid_dpop_proof (RFC 9449
// §8, §5). Such a refusal says nothing about the refresh token; the proof's
// owner may try again with a new proof.
func IsProofRefusal(err error) bool {
	var g *GrantError
	return errors.As(err, &g) && (g.Code == ErrorUseDPoPNonce || g.Code == ErrorInvalidDPoPProof)
}

// mediation is what RefreshWithProof puts in the context of its Refresh:
// post puts proof in the DPoP header of the first request made with that
// context, which is the token request (later ones, such as userinfo or the
// revocations of a refused answer, go without it), and keeps the
// DPoP-Nonce of its response.
type mediation struct {
	proof string

	mu    sync.Mutex
	used  bool
	nonce string
}

type mediationKey struct{}

// mediated reports whether ctx is that of a RefreshWithProof.
func mediated(ctx context.Context) bool {
	_, ok := ctx.Value(mediationKey{}).(*mediation)
	return ok
}

// takeProof returns the external proof for the request post is about to
// send with ctx, once; "" when there is none (any more).
func takeProof(ctx context.Context) (*mediation, string) {
	m, _ := ctx.Value(mediationKey{}).(*mediation)
	if m == nil {
		return nil, ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.used {
		return nil, ""
	}
	m.used = true
	return m, m.proof
}

// answered keeps the DPoP-Nonce of the response to the mediated request.
func (m *mediation) answered(h http.Header) {
	if m == nil {
		return
	}
	if n := h.Get(HeaderDPoPNonce); ValidDPoPNonce(n) {
		m.mu.Lock()
		m.nonce = n
		m.mu.Unlock()
	}
}

func (m *mediation) responseNonce() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nonce
}

// tokenJKT returns the cnf.jkt claim of an access token that is a JWT,
// unverified (the check it serves only refuses; the API verifies the
// token), or "".
func tokenJKT(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Cnf.JKT
}
