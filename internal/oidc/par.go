package oidc

// Pushed Authorization Requests, RFC 9126.
//
// With PAR the authorization request's parameters (response_type,
// redirect_uri, scope, state, nonce, code_challenge and its method, prompt,
// Options.AuthParams) are POSTed to the provider's
// pushed_authorization_request_endpoint (§2.1) with client authentication,
// the same as at the token endpoint (Client.post). The provider answers 201
// with a request_uri and its expires_in (§2.2); the browser's authorization
// URL then carries only client_id and request_uri (§4), so nothing of the
// request can be read or altered in the browser.
//
// The request_uri's expires_in is not kept: the login-attempt cookie holds
// what the callback needs (state, nonce, verifier) for its own ten
// minutes, and the request_uri is spent as soon as the browser reaches the
// authorization endpoint, a redirect later. A provider that omits
// expires_in, which §2.2 requires, is accepted for the same reason.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// PAR modes (Options.PAR).
const (
	// PARAuto pushes authorization requests when discovery advertises a
	// pushed_authorization_request_endpoint, and sends them classically in
	// the browser's URL otherwise. The default.
	PARAuto = "auto"
	// PARRequired pushes every authorization request; discovery of a
	// provider without a PAR endpoint fails with ErrUnfit.
	PARRequired = "required"
	// PAROff never pushes, even when the provider offers PAR. A provider
	// that requires PAR (require_pushed_authorization_requests) then
	// refuses every login.
	PAROff = "off"
)

// grantPAR names pushed authorization requests to OnClientAuthFailure.
const grantPAR = "pushed_authorization_request"

// parTimeout bounds a pushed authorization request: a browser is waiting
// for its redirect.
const parTimeout = 10 * time.Second

// parMode is Options.PAR with its default; a profile that requires PAR
// turns auto into required.
func (c *Client) parMode() string {
	switch {
	case c.opts.PAR == PAROff:
		return PAROff
	case c.opts.PAR == PARRequired || c.opts.Profile == ProfileFAPI2:
		return PARRequired
	default:
		return PARAuto
	}
}

// parEndpoint is the PAR endpoint discovery found for this client: "" when
// PAR is off, or auto and the provider has none. Required PAR with a
// provider that has none is an ErrUnfit error naming oidc.par.
func (c *Client) parEndpoint(m *metadata) (string, error) {
	mode := c.parMode()
	if mode == PAROff {
		if m.RequirePAR {
			c.log.Warn("the provider requires pushed authorization requests but oidc.par is off: every login will be refused", "issuer", c.opts.Issuer)
		}
		return "", nil
	}
	// With a client certificate this is already the endpoint's mTLS alias
	// (RFC 8705 §5, see applyMTLSAliases).
	ep := m.PARURL
	if ep == "" {
		if mode == PARRequired {
			return "", fmt.Errorf("%w: oidc.par is required (or oidc.profile needs it) but the provider advertises no pushed_authorization_request_endpoint", ErrUnfit)
		}
		return "", nil
	}
	if err := checkEndpoint(ep, strings.HasPrefix(c.opts.Issuer, "https://")); err != nil {
		return "", fmt.Errorf("pushed_authorization_request_endpoint: %w", err)
	}
	return ep, nil
}

// authParams are the parameters of one authorization request, whether sent
// in the browser's URL or pushed (RFC 6749 §4.1.1, OIDC Core §3.1.2.1,
// RFC 7636 §4.3).
func (c *Client) authParams(a AuthRequest) url.Values {
	v := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.opts.ClientID},
		"state":                 {a.State},
		"nonce":                 {a.Nonce},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(a.Verifier)},
		"code_challenge_method": {"S256"},
	}
	if c.opts.RedirectURL != "" {
		v.Set("redirect_uri", c.opts.RedirectURL)
	}
	if len(c.opts.Scopes) > 0 {
		v.Set("scope", strings.Join(c.opts.Scopes, " "))
	}
	for k, val := range c.opts.AuthParams {
		v.Set(k, val)
	}
	if a.Prompt != "" {
		v.Set("prompt", a.Prompt)
	}
	if a.DPoPJKT != "" {
		v.Set("dpop_jkt", a.DPoPJKT)
	}
	return v
}

// withQuery appends v to endpoint's own query, as RFC 6749 §3.1 asks.
func withQuery(endpoint string, v url.Values) string {
	if strings.Contains(endpoint, "?") {
		return endpoint + "&" + v.Encode()
	}
	return endpoint + "?" + v.Encode()
}

// PARError is an error answer of the PAR endpoint (RFC 9126 §2.3): the
// provider refused the request (invalid_request, invalid_client, ...) or
// failed (5xx). Code is the OAuth error code, or "http_NNN".
type PARError struct {
	Code string
	HTTP int
}

func (e *PARError) Error() string {
	return fmt.Sprintf("pushed authorization request: provider answered %d %s", e.HTTP, e.Code)
}

// pushAuthorization pushes v to the PAR endpoint and returns the browser's
// authorization URL: the authorization endpoint with client_id and
// request_uri only (RFC 9126 §4).
func (c *Client) pushAuthorization(ctx context.Context, d *discovered, v url.Values) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, parTimeout)
	defer cancel()
	// client_id stays in the body (RFC 9126 §2.1: the request is an
	// authorization request); post adds the client's authentication.
	// DPoP (RFC 9449 §10.1) binds the code by dpop_jkt, already in v when
	// AuthRequest.DPoPJKT is set, and by the proof the DPoP transport adds
	// when ctx carries the key (WithDPoPKey); postDPoP answers the
	// provider's use_dpop_nonce.
	resp, err := c.postDPoP(ctx, d.par, v)
	if err != nil {
		return "", fmt.Errorf("pushed authorization request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("pushed authorization request: read answer: %w", err)
	}
	var pr struct {
		RequestURI string          `json:"request_uri"`
		ExpiresIn  json.RawMessage `json:"expires_in"`
		Error      string          `json:"error"`
	}
	jsonErr := json.Unmarshal(body, &pr)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		code := ""
		if jsonErr == nil {
			code = safeErrorCode(pr.Error)
		}
		if code == "" {
			code = fmt.Sprintf("http_%d", resp.StatusCode)
		}
		c.refused(grantPAR, &GrantError{Code: code, HTTP: resp.StatusCode})
		return "", &PARError{Code: code, HTTP: resp.StatusCode}
	}
	if jsonErr != nil {
		return "", errors.New("pushed authorization request: the answer is not a JSON object")
	}
	if pr.RequestURI == "" || len(pr.RequestURI) > 2048 {
		return "", errors.New("pushed authorization request: the answer has no usable request_uri")
	}
	return withQuery(d.authEndpoint, url.Values{
		"client_id":   {c.opts.ClientID},
		"request_uri": {pr.RequestURI},
	}), nil
}

// safeErrorCode keeps an OAuth error code when it is one (RFC 6749 §5.2:
// printable ASCII without quote and backslash), short, for logs.
func safeErrorCode(s string) string {
	if len(s) > 64 {
		return ""
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return ""
		}
	}
	return s
}
