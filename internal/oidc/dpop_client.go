package oidc

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DPoP on the client's own calls to the provider (RFC 9449 §5, §7, §8):
// token requests of every grant, pushed authorization requests, and
// userinfo calls with a DPoP-bound token carry a proof made by the key the
// caller put in the context with WithDPoPKey.
//
// Two layers share the work:
//
//   - dpopTransport, the innermost layer of the Client's HTTP client, signs
//     each request made with such a context for the URL it is actually
//     sent to (an mtls_endpoint_aliases endpoint included), with the
//     latest nonce of that server, and keeps every DPoP-Nonce a response
//     carries (to signed requests or not), per server origin (NonceCache, one per provider, shared by
//     WithCredentials clients). A request that already carries a DPoP
//     header (POST /bff/token's, made by the SPA's key) is left alone. A
//     userinfo call (no body) refused with use_dpop_nonce is sent once
//     more with the new nonce (§9).
//   - postDPoP, around post, answers a token or PAR endpoint's
//     use_dpop_nonce (§8: 400 with a DPoP-Nonce header) by calling post
//     once more, which authenticates the client afresh: a client
//     assertion must not be sent twice (its jti would be a replay).

// dpopKeyCtx is the context key of WithDPoPKey.
type dpopKeyCtx struct{}

// WithDPoPKey returns ctx carrying key: the Client's calls to the
// provider made with it (Exchange, Refresh, ClientCredentials,
// ExchangeToken, AuthCodeURL's pushed request, the userinfo call after a
// login or refresh) carry DPoP proofs signed by key, so the provider binds
// the tokens it issues to key (RFC 9449 §5); AuthRequest.DPoPJKT binds the
// authorization code to it too. A nil key returns ctx unchanged.
func WithDPoPKey(ctx context.Context, key *DPoPKey) context.Context {
	if key == nil {
		return ctx
	}
	return context.WithValue(ctx, dpopKeyCtx{}, key)
}

// dpopKeyOf returns the key WithDPoPKey put in ctx, or nil.
func dpopKeyOf(ctx context.Context) *DPoPKey {
	k, _ := ctx.Value(dpopKeyCtx{}).(*DPoPKey)
	return k
}

// authScheme is the Authorization scheme of an access token sent with ctx:
// DPoP when ctx carries the key the token is bound to, else Bearer.
func authScheme(ctx context.Context) string {
	if dpopKeyOf(ctx) != nil {
		return DPoPScheme
	}
	return "Bearer"
}

// maxNonceAnswer bounds the error body read to find use_dpop_nonce.
const maxNonceAnswer = 64 << 10

// dpopTransport signs the requests whose context carries a DPoP key; see
// the top of this file.
type dpopTransport struct {
	rt     http.RoundTripper
	nonces *NonceCache
	now    func() time.Time
}

// withDPoP returns a copy of hc whose transport is wrapped by a
// dpopTransport with a new NonceCache. hc is not modified.
func withDPoP(hc *http.Client, now func() time.Time) *http.Client {
	g := *hc
	rt := g.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	g.Transport = &dpopTransport{rt: rt, nonces: NewNonceCache(0), now: now}
	return &g
}

func (t *dpopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	key := dpopKeyOf(req.Context())
	origin := DPoPOrigin(req.URL)
	if key == nil || req.Header.Get(HeaderDPoP) != "" {
		// Unsigned here, but the nonce is kept: POST /bff/token's proofs
		// need the latest (Client.DPoPNonce).
		resp, err := t.rt.RoundTrip(req)
		if err == nil {
			if n := resp.Header.Get(HeaderDPoPNonce); n != "" {
				t.nonces.Set(origin, n)
			}
		}
		return resp, err
	}
	// The access token a resource request presents goes into ath.
	var token string
	if scheme, tok, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, DPoPScheme) {
		token = tok
	}
	resp, err := t.signed(req, key, origin, token)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (req.Body != nil && req.Body != http.NoBody) {
		return resp, err
	}
	if _, ok := UseDPoPNonce(resp.StatusCode, resp.Header, nil); !ok {
		return resp, nil
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxNonceAnswer)
	resp.Body.Close()
	return t.signed(req, key, origin, token)
}

// signed sends a copy of req with a proof and keeps the answer's nonce.
func (t *dpopTransport) signed(req *http.Request, key *DPoPKey, origin, token string) (*http.Response, error) {
	proof, err := key.Proof(req.Method, req.URL.String(), token, t.nonces.Get(origin), t.now())
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context()) // a RoundTripper leaves its request alone
	r.Header.Set(HeaderDPoP, proof)
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if n := resp.Header.Get(HeaderDPoPNonce); n != "" {
		t.nonces.Set(origin, n)
	}
	return resp, nil
}

// postDPoP is post, sent once more when the provider answers
// use_dpop_nonce (RFC 9449 §8) to a request made with a DPoP key: the
// dpopTransport has kept the new nonce, and post authenticates the client
// afresh. Without a key in ctx it is post.
func (c *Client) postDPoP(ctx context.Context, endpoint string, v url.Values) (*http.Response, error) {
	if dpopKeyOf(ctx) == nil {
		return c.post(ctx, endpoint, v)
	}
	first := url.Values{}
	for k, vs := range v {
		first[k] = vs
	}
	resp, err := c.post(ctx, endpoint, first)
	if err != nil || resp.StatusCode != http.StatusBadRequest || resp.Header.Get(HeaderDPoPNonce) == "" {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxNonceAnswer))
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	if _, ok := UseDPoPNonce(resp.StatusCode, resp.Header, body); !ok {
		// Not ours to answer: the caller reads the body as it came.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	return c.post(ctx, endpoint, v)
}

// DPoPNonce is the latest DPoP nonce the provider's token endpoint sent,
// or "" (none yet, or DPoP never used): what a proof for the token
// endpoint made elsewhere (POST /bff/token's) should carry.
func (c *Client) DPoPNonce() string {
	d, err := c.get()
	if err != nil {
		return ""
	}
	t, ok := c.hc.Transport.(*dpopTransport)
	if !ok {
		return ""
	}
	u, err := url.Parse(d.tokenEndpoint)
	if err != nil {
		return ""
	}
	return t.nonces.Get(DPoPOrigin(u))
}
