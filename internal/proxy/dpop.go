package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
)

// DPoP to upstreams (RFC 9449 §7): a route whose Bearer is a DPoPBearer,
// on a proxy with Options.DPoP, sends a token that comes with its key as
//
//	Authorization: DPoP <token>
//	DPoP: <a fresh proof: htm, htu, ath, iat, a unique jti, the nonce>
//
// where htu is the upstream URL actually requested, without query and
// fragment, and the nonce is the latest the upstream's origin sent (any
// answer's DPoP-Nonce header is kept). An upstream's 401 with
// WWW-Authenticate: DPoP error="use_dpop_nonce" and a DPoP-Nonce is
// answered by one more request with a new proof carrying that nonce, when
// the request has no body: a body is streamed to the upstream as it
// arrives, so it cannot be sent twice, and that 401 passes through to the
// browser (the nonce is kept, so the browser's own retry succeeds). A token
// that comes without a key goes as a bearer token, as on any other route.

// DPoPSigner signs DPoP proofs with the key a token is bound to
// (*oidc.DPoPKey): the proof for a request with method htm to URL htu
// (its query and fragment are left out), carrying accessToken, with nonce
// when not empty, made at now. An alias of an interface literal, so the
// token layer satisfies DPoPBearer without importing this package.
type DPoPSigner = interface {
	Proof(htm, htu, accessToken, nonce string, now time.Time) (string, error)
}

// DPoPBearer is a Bearer whose tokens may be DPoP-bound: DPoPToken is
// Token, with the key the token is bound to, or nil for a bearer token.
type DPoPBearer interface {
	Bearer
	DPoPToken(r *http.Request) (token string, key DPoPSigner, err error)
}

// DPoPNonces keeps each upstream's latest DPoP nonce, by origin
// (scheme://host as the route's upstream URL writes it).
type DPoPNonces interface {
	// Nonce returns the latest nonce origin sent, or "".
	Nonce(origin string) string
	// Observe keeps the DPoP-Nonce header of an answer from origin and
	// reports whether the answer asks for the request again with it (RFC
	// 9449 §9: 401 with a DPoP challenge whose error is use_dpop_nonce).
	Observe(origin string, status int, h http.Header) (retry bool)
}

// RFC 9449's proof header, in Go's canonical form (a map key), and its
// Authorization scheme.
const (
	headerDPoP = "Dpop"
	dpopScheme = "DPoP"
)

// maxRetryDrain bounds what is read of a use_dpop_nonce answer before
// its connection is reused for the retry.
const maxRetryDrain = 64 << 10

// dpopTransport adds the proofs and answers use_dpop_nonce; see the top of
// this file. It sits outside the timing and tracing wrappers, so a retry
// is timed and traced as the call it is.
type dpopTransport struct {
	next   http.RoundTripper
	nonces DPoPNonces
	origin string // the route's upstream
	now    func() time.Time
}

func (t *dpopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := httpx.InfoOf(req.Context())
	var key DPoPSigner
	if info != nil && info.Bearer != "" {
		key, _ = info.DPoP.(DPoPSigner)
	}
	if key == nil {
		return t.next.RoundTrip(req)
	}
	htu := proofURL(req.URL)
	proof, err := key.Proof(req.Method, htu, info.Bearer, t.nonces.Nonce(t.origin), t.now())
	if err != nil {
		return nil, fmt.Errorf("DPoP proof: %w", err)
	}
	// The outbound request is the ReverseProxy's own copy, made for this
	// call: the proof goes onto it as the Authorization header did.
	req.Header[headerDPoP] = []string{proof}
	resp, err := t.next.RoundTrip(req)
	if err != nil || !t.nonces.Observe(t.origin, resp.StatusCode, resp.Header) {
		return resp, err
	}
	if req.Body != nil && req.Body != http.NoBody {
		return resp, nil // streamed: the 401 passes through
	}
	proof, err = key.Proof(req.Method, htu, info.Bearer, t.nonces.Nonce(t.origin), t.now())
	if err != nil {
		return resp, nil
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxRetryDrain)
	resp.Body.Close()
	retry := req.Clone(req.Context())
	retry.Header[headerDPoP] = []string{proof}
	resp, err = t.next.RoundTrip(retry)
	if err == nil {
		t.nonces.Observe(t.origin, resp.StatusCode, resp.Header) // kept; no second retry
	}
	return resp, err
}

// proofURL is u without query and fragment: a proof's htu.
func proofURL(u *url.URL) string {
	var b strings.Builder
	p := u.EscapedPath()
	b.Grow(len(u.Scheme) + 3 + len(u.Host) + len(p))
	b.WriteString(u.Scheme)
	b.WriteString("://")
	b.WriteString(u.Host)
	b.WriteString(p)
	return b.String()
}
