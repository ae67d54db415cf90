package bff

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/tokens"
)

// The token-mediating mode (draft-ietf-oauth-browser-based-apps-26 §6.2,
// "Token-Mediating Backend"), for SPAs that must call an API directly:
// the SPA holds a non-extractable key (WebCrypto) and asks for an access
// token bound to it (DPoP, RFC 9449), which it then presents to the API
// itself with its own proofs. The refresh token never leaves the session.
//
//   - GET /bff/token?api=<route path> answers {"htu", "htm", "nonce"}:
//     what the SPA's proof must name, the provider's token endpoint and
//     POST, and the provider's latest DPoP nonce (absent when none is
//     known).
//   - POST /bff/token?api=<route path> with a DPoP header holding that
//     proof answers {"access_token", "token_type": "DPoP", "expires_in",
//     "api"}: a refresh_token grant with the session's refresh token and
//     the route's scopes, resource and audience, carrying the SPA's proof
//     (tokens.Source.Mediate). Never a refresh token, never the ID token.
//
// Both need the CSRF header and a session (else 401, empty, as /bff/user),
// an api parameter naming an apis[].path (400 without one, 404 for an
// unknown path) whose route has mediate on (else 403) and whose require
// policy, if any, the session meets (else 403, as a proxied call would
// get; a path binding always denies). The proof is
// checked here first (oidc.VerifyDPoPProof: signature, typ, htm POST, htu
// the token endpoint, iat within a minute, its jti never seen before): a
// missing or invalid one is 400 invalid_dpop_proof and nothing reaches the
// provider. The provider's use_dpop_nonce is relayed as 400 with its
// DPoP-Nonce header, so the SPA signs again with the nonce; so is its
// invalid_dpop_proof. Every answer is Cache-Control: no-store.

// TokenPath is the token-mediating endpoint's path.
const TokenPath = "/bff/token"

// Mediation configures /bff/token.
type Mediation struct {
	// Routes are the API routes by apis[].path, each with the token
	// parameters of its mediated grant; a route whose Mediate is false
	// answers 403.
	Routes map[string]TokenRoute
}

// TokenRoute is an API route as /bff/token sees it.
type TokenRoute struct {
	// Mediate is apis[].mediate.
	Mediate bool
	// Params narrow the mediated token: the route's scopes, resource
	// (RFC 8707) and audience.
	Params oidc.TokenParams
	// Require is the route's authorization policy (apis[].require), if
	// any: a session it denies gets no token for the route (403), as it
	// gets no proxied call. A path binding cannot hold here, where there
	// is no API path: it always denies.
	Require *tokens.Policy
}

type mediation struct {
	routes map[string]TokenRoute
}

func newMediation(m Mediation) mediation { return mediation{routes: m.Routes} }

// tokenTarget is GET /bff/token's answer.
type tokenTarget struct {
	HTU   string `json:"htu"`
	HTM   string `json:"htm"`
	Nonce string `json:"nonce,omitempty"`
}

// mediatedToken is POST /bff/token's answer.
type mediatedToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	API         string `json:"api"`
}

// tokenTarget answers GET /bff/token.
func (h *Handler) tokenTarget(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	if _, _, _, err := h.mediatedRoute(r); err != nil {
		return err
	}
	htu, err := h.tokenURL()
	if err != nil {
		return err
	}
	return httpx.JSON(w, http.StatusOK, tokenTarget{HTU: htu, HTM: http.MethodPost, Nonce: h.oidc.DPoPNonce()})
}

// mediate answers POST /bff/token.
func (h *Handler) mediate(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	s, api, route, err := h.mediatedRoute(r)
	if err != nil {
		return err
	}
	htu, err := h.tokenURL()
	if err != nil {
		return err
	}
	proofs := r.Header.Values(oidc.HeaderDPoP)
	if len(proofs) != 1 {
		return h.proofProblem(w, r, oidc.ErrorInvalidDPoPProof, "send exactly one DPoP header with a proof for the token endpoint (see GET "+TokenPath+")", nil)
	}
	now := h.sessions.Now()
	p, err := oidc.VerifyDPoPProof(proofs[0], http.MethodPost, htu, oidc.DPoPCheck{Now: now})
	if err != nil {
		return h.proofProblem(w, r, oidc.ErrorInvalidDPoPProof, "the DPoP proof is not valid for the token endpoint (see GET "+TokenPath+")", err)
	}
	// A proof is good for DefaultDPoPWindow either side of its iat: its
	// jti is kept that long, so a copied proof is refused here rather
	// than at the provider.
	first, err := h.sessions.FirstUse(r.Context(), h.locker, h.replay, "dpop\x00"+p.JKT+"\x00"+p.ID, 2*oidc.DefaultDPoPWindow)
	if err != nil {
		return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	if !first {
		return h.proofProblem(w, r, oidc.ErrorInvalidDPoPProof, "this DPoP proof was already used; make a new one", nil)
	}
	// The provider's DPoP-Nonce is kept by the client for GET as well
	// (oidc.Client.DPoPNonce); nonce is the one this answer carried.
	t, nonce, err := h.tokens.Mediate(r.Context(), s, route.Params, proofs[0], p.JKT)
	var g *oidc.GrantError
	switch {
	case err == nil:
	case errors.Is(err, oidc.ErrNotReady):
		return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "the identity provider is not reachable yet; try again shortly", Err: err}
	case errors.As(err, &g) && g.Code == oidc.ErrorUseDPoPNonce && nonce != "":
		w.Header().Set(oidc.HeaderDPoPNonce, nonce)
		return h.proofProblem(w, r, oidc.ErrorUseDPoPNonce, "the identity provider wants its nonce in the DPoP proof: sign again with the DPoP-Nonce header's value", err)
	case oidc.IsProofRefusal(err):
		return h.proofProblem(w, r, oidc.ErrorInvalidDPoPProof, "the identity provider did not accept the DPoP proof", err)
	default:
		return err
	}
	expiry := t.Expiry
	if expiry.IsZero() {
		expiry = now.Add(tokens.DefaultLifetime)
	}
	h.log.InfoContext(r.Context(), "token mediated", "request_id", httpx.RequestID(r.Context()), "api", api)
	return httpx.JSON(w, http.StatusOK, mediatedToken{
		AccessToken: t.AccessToken,
		TokenType:   oidc.DPoPScheme,
		ExpiresIn:   int64(max(expiry.Sub(now), 0) / time.Second),
		API:         api,
	})
}

// mediatedRoute checks what GET and POST /bff/token both need: the CSRF
// header, a session, and an api parameter naming a route with mediate on.
func (h *Handler) mediatedRoute(r *http.Request) (*session.Session, string, TokenRoute, error) {
	unauth := httpx.Error{Code: http.StatusUnauthorized, Empty: true, Msg: "not signed in"}
	if !h.csrf.OK(r) {
		return nil, "", TokenRoute{}, unauth
	}
	s, err := h.sessions.Load(r)
	if errors.Is(err, session.ErrNotFound) {
		return nil, "", TokenRoute{}, unauth
	}
	if err != nil {
		return nil, "", TokenRoute{}, httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	apis := r.URL.Query()["api"]
	if len(apis) != 1 || apis[0] == "" {
		return nil, "", TokenRoute{}, httpx.Error{Code: http.StatusBadRequest, Msg: "name one API route: ?api=<its path>, e.g. ?api=/api/orders/"}
	}
	route, ok := h.mediator.routes[apis[0]]
	if !ok {
		return nil, "", TokenRoute{}, httpx.Error{Code: http.StatusNotFound, Msg: "api names no API route of this gateway"}
	}
	if !route.Mediate {
		return nil, "", TokenRoute{}, httpx.Error{Code: http.StatusForbidden, Msg: "this API route does not hand tokens to the browser: its calls go through the gateway"}
	}
	if route.Require != nil && !route.Require.Allows(r, s) {
		return nil, "", TokenRoute{}, httpx.Error{Code: http.StatusForbidden, Msg: "the route's authorization policy denies this request"}
	}
	if err := h.sessions.Touch(r.Context(), s); err != nil {
		return nil, "", TokenRoute{}, httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	return s, apis[0], route, nil
}

// tokenURL is the provider's token endpoint, as the gateway calls it (an
// mTLS alias included).
func (h *Handler) tokenURL() (string, error) {
	htu, err := h.oidc.TokenURL()
	if err != nil {
		return "", httpx.Error{Code: http.StatusServiceUnavailable, Msg: "the identity provider is not reachable yet; try again shortly", Err: err}
	}
	return htu, nil
}

// proofProblem answers 400 problem+json whose error member is an RFC 9449
// error code (invalid_dpop_proof, use_dpop_nonce), as a DPoP client
// expects it. err is logged, never sent.
func (h *Handler) proofProblem(w http.ResponseWriter, r *http.Request, code, detail string, err error) error {
	h.log.InfoContext(r.Context(), "token mediation refused", "request_id", httpx.RequestID(r.Context()), "error_code", code, "error", errString(err))
	hd := w.Header()
	hd.Set("Content-Type", "application/problem+json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
		Error  string `json:"error"`
	}{"about:blank", http.StatusText(http.StatusBadRequest), http.StatusBadRequest, detail, code})
	return nil
}
