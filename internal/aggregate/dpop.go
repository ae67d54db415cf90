package aggregate

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// DPoP to upstreams (RFC 9449 §7), as package proxy does it: a part whose
// Bearer is a DPoPBearer, in a composite with Options.DPoP, sends a token
// that comes with its key as Authorization: DPoP <token> with a fresh
// proof (htm GET, htu the part's URL without query, ath, iat, a unique jti,
// the upstream's latest nonce). A part's call has no body, so an
// upstream's 401 use_dpop_nonce is always answered by one more call with
// the nonce.

// DPoPSigner signs DPoP proofs with the key a token is bound to
// (*oidc.DPoPKey); the same interface literal as proxy.DPoPSigner.
type DPoPSigner = interface {
	Proof(htm, htu, accessToken, nonce string, now time.Time) (string, error)
}

// DPoPBearer is a Bearer whose tokens may be DPoP-bound: DPoPToken is
// Token, with the key the token is bound to, or nil for a bearer token.
type DPoPBearer interface {
	Bearer
	DPoPToken(r *http.Request) (token string, key DPoPSigner, err error)
}

// DPoPNonces keeps each upstream's latest DPoP nonce by origin
// (scheme://host as the part's upstream URL writes it), as
// proxy.DPoPNonces.
type DPoPNonces interface {
	Nonce(origin string) string
	Observe(origin string, status int, h http.Header) (retry bool)
}

// headerDPoP is RFC 9449's proof header in Go's canonical form.
const headerDPoP = "Dpop"

// sendDPoP makes part p's call req with token bound to key: the proof
// for the call's URL, and one more call when the upstream asks for a
// nonce.
func (h *handler) sendDPoP(tr http.RoundTripper, req *http.Request, p *part, token string, key DPoPSigner) (*http.Response, error) {
	htu := p.origin + req.URL.EscapedPath()
	req.Header.Set("Authorization", "DPoP "+token)
	proof, err := key.Proof(http.MethodGet, htu, token, h.dpop.Nonce(p.origin), h.now())
	if err != nil {
		return nil, fmt.Errorf("DPoP proof: %w", err)
	}
	req.Header[headerDPoP] = []string{proof}
	resp, err := tr.RoundTrip(req)
	if err != nil || !h.dpop.Observe(p.origin, resp.StatusCode, resp.Header) {
		return resp, err
	}
	proof, err = key.Proof(http.MethodGet, htu, token, h.dpop.Nonce(p.origin), h.now())
	if err != nil {
		return resp, nil
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	retry := req.Clone(req.Context())
	retry.Header[headerDPoP] = []string{proof}
	if resp, err = tr.RoundTrip(retry); err == nil {
		h.dpop.Observe(p.origin, resp.StatusCode, resp.Header)
	}
	return resp, err
}
