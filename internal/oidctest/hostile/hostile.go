// Package hostile is TEST SUPPORT ONLY: a programmable OpenID provider that
// misbehaves on demand, for attack tests of an OpenID Connect relying party.
// It is an ordinary (non-_test) package only so that tests in other
// packages can import it; production code must never import it.
//
// New starts the provider on 127.0.0.1 with discovery, JWKS, token and
// revocation endpoints that behave like a correct provider until a test
// changes them through the Provider's fields:
//
//	p := hostile.New(t)
//	p.TokenJSON = func(url.Values) map[string]any {
//		c := p.IDClaims()
//		c["aud"] = "someone-else"
//		return p.TokenResponse(p.Mint(t, hostile.Token{Claims: c}))
//	}
//	// point the client under test at p.Issuer, p.ClientID, p.ClientSecret
//
// A second server, the Attacker, stands for a host the attacker controls:
// redirects and header-embedded key URLs (jku, x5u) point at it, and its
// request count shows whether the client under test was lured there.
//
// Every body the provider writes itself carries Canary, so a test can check
// that an error message never quotes a provider's response.
package hostile

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Defaults of a new Provider.
const (
	DefaultClientID     = "cloakroom"
	DefaultClientSecret = "hostile-client-secret-9c1e"
	DefaultSubject      = "alice"
	DefaultNonce        = "hostile-nonce-4b7d"
	DefaultEmail        = "alice@hostile.example"
)

// Canary is part of every body the provider and the attacker write: the
// discovery document, the JWKS, token responses and errors, Huge bodies.
const Canary = "hostile-canary-5e2f0a"

// Endpoint paths, relative to Provider.URL.
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathAuthorize  = "/authorize"
	PathToken      = "/token"
	PathJWKS       = "/jwks"
	PathRevocation = "/revoke"
	PathEndSession = "/logout"
	PathUserInfo   = "/userinfo"
)

// Provider is a running hostile provider.
//
// The exported fields other than URL, Issuer, RSA, EC and Attacker are the
// test's controls. Handlers read them under a lock: set them between calls
// of the client under test, or inside Edit while calls may be in flight.
type Provider struct {
	// URL is the server's base URL, "http://127.0.0.1:PORT".
	URL string
	// Issuer is the issuer the discovery document and IDClaims name: URL.
	Issuer string
	// RSA and EC are the provider's own signing keys.
	RSA, EC *Key
	// Attacker is the attacker's server.
	Attacker *Attacker

	ClientID, ClientSecret string
	// Now is the clock of IDClaims and LogoutClaims; default time.Now.
	Now func() time.Time

	// EditDiscovery changes the default discovery document before it is
	// written (issuer mismatch, missing members, odd algorithms).
	EditDiscovery func(doc map[string]any)
	// Discovery replaces the discovery endpoint (huge, slow, redirecting).
	Discovery http.HandlerFunc
	// Published are the keys the JWKS lists; default RSA and EC.
	Published []*Key
	// ExtraJWKs are JSON objects appended verbatim to the JWKS keys, for
	// unknown key types and algorithms.
	ExtraJWKs []string
	// JWKS replaces the JWKS endpoint.
	JWKS http.HandlerFunc
	// TokenJSON is the JSON body of a 200 token response for the request's
	// form; default TokenResponse of a valid ID token for the default
	// claims.
	TokenJSON func(form url.Values) map[string]any
	// Token replaces the token endpoint; r.PostForm is already parsed.
	Token http.HandlerFunc
	// Revocation replaces the revocation endpoint (default: 200).
	Revocation http.HandlerFunc
	// UserInfoClaims are the claims the userinfo endpoint answers for the
	// request's bearer token; default UserInfoDefaults. The endpoint
	// answers 401 to a request without a bearer token.
	UserInfoClaims func(accessToken string) map[string]any
	// UserInfoSigned makes the userinfo endpoint answer those claims as a
	// JWS (application/jwt, OIDC Core §5.3.2) signed with the RSA key, as
	// they are: add iss and aud to them for a complete signed answer.
	UserInfoSigned bool
	// UserInfo replaces the userinfo endpoint (500, hang, odd types).
	UserInfo http.HandlerFunc
	// Refresh replaces the token endpoint for refresh_token grants only
	// (a dead refresh token, a bad refreshed ID token), so logins still
	// work; it wins over Token. r.PostForm is already parsed.
	Refresh http.HandlerFunc

	flow flow // login attempts and revocations: flow.go

	mu      sync.Mutex
	hits    map[string]int
	forms   []url.Values
	bearers []string // of userinfo requests
	done    chan struct{}
}

// New starts a provider and its attacker; both stop when the test ends.
func New(t testing.TB) *Provider {
	t.Helper()
	p := &Provider{
		RSA:          NewRSAKey(t, "rsa-"+randomHex(4)),
		EC:           NewECKey(t, "ec-"+randomHex(4)),
		ClientID:     DefaultClientID,
		ClientSecret: DefaultClientSecret,
		Now:          time.Now,
		hits:         map[string]int{},
		done:         make(chan struct{}),
	}
	p.Published = []*Key{p.RSA, p.EC}
	p.Attacker = newAttacker(t)

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathDiscovery, p.discovery)
	mux.HandleFunc("GET "+PathJWKS, p.jwks)
	mux.HandleFunc("POST "+PathToken, p.token)
	mux.HandleFunc("POST "+PathRevocation, p.revocation)
	mux.HandleFunc("GET "+PathAuthorize, p.authorize)
	mux.HandleFunc(PathUserInfo, p.userInfo)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "not_found", "x_canary": Canary})
	})
	srv := httptest.NewServer(p.count(mux))
	// Cleanups run last-registered first: release hanging handlers, then
	// close the server (which waits for them).
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(p.done) })
	p.URL = srv.URL
	p.Issuer = srv.URL
	return p
}

// Edit runs f under the lock the handlers read the controls with; f must
// not call the Provider's methods.
func (p *Provider) Edit(f func(p *Provider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *Provider) count(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hits[r.URL.Path]++
		p.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// Hits is how many requests path received, whatever their outcome.
func (p *Provider) Hits(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[path]
}

// JWKSFetches is how many requests the JWKS endpoint received.
func (p *Provider) JWKSFetches() int { return p.Hits(PathJWKS) }

// TokenRequests is how many requests the token endpoint received.
func (p *Provider) TokenRequests() int { return p.Hits(PathToken) }

// TokenForms are the forms of all token requests so far.
func (p *Provider) TokenForms() []url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]url.Values(nil), p.forms...)
}

// Reset puts every control back to its default and forgets the counts, so
// that one provider can serve the cases of a table one after the other.
func (p *Provider) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ClientID, p.ClientSecret, p.Now = DefaultClientID, DefaultClientSecret, time.Now
	p.EditDiscovery, p.Discovery = nil, nil
	p.Published, p.ExtraJWKs, p.JWKS = []*Key{p.RSA, p.EC}, nil, nil
	p.TokenJSON, p.Token, p.Revocation, p.Refresh = nil, nil, nil, nil
	p.flow.reset()
	p.UserInfoClaims, p.UserInfoSigned, p.UserInfo = nil, false, nil
	p.bearers = nil
	p.hits = map[string]int{}
	p.forms = nil
	p.Attacker.mu.Lock()
	p.Attacker.paths = nil
	p.Attacker.mu.Unlock()
}

// ResetCounts forgets request counts and token forms.
func (p *Provider) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hits = map[string]int{}
	p.forms = nil
	p.bearers = nil
}

// DiscoveryDocument is the default discovery document.
func (p *Provider) DiscoveryDocument() map[string]any {
	return map[string]any{
		"issuer":                                         p.Issuer,
		"authorization_endpoint":                         p.URL + PathAuthorize,
		"token_endpoint":                                 p.URL + PathToken,
		"jwks_uri":                                       p.URL + PathJWKS,
		"revocation_endpoint":                            p.URL + PathRevocation,
		"end_session_endpoint":                           p.URL + PathEndSession,
		"userinfo_endpoint":                              p.URL + PathUserInfo,
		"response_types_supported":                       []string{"code"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"RS256", "ES256"},
		"code_challenge_methods_supported":               []string{"S256"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token", "client_credentials"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post"},
		"authorization_response_iss_parameter_supported": true,
		"x_canary":                                       Canary,
	}
}

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	h, edit := p.Discovery, p.EditDiscovery
	p.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	doc := p.DiscoveryDocument()
	if edit != nil {
		edit(doc)
	}
	writeJSON(w, http.StatusOK, doc)
}

// KeySet is the JWKS the provider serves by default: Published, then
// ExtraJWKs.
func (p *Provider) KeySet() []byte {
	p.mu.Lock()
	published, extra := p.Published, p.ExtraJWKs
	p.mu.Unlock()
	keys := make([]json.RawMessage, 0, len(published)+len(extra))
	for _, k := range published {
		b, _ := json.Marshal(k.JWK())
		keys = append(keys, b)
	}
	for _, e := range extra {
		keys = append(keys, json.RawMessage(e))
	}
	b, err := json.Marshal(map[string]any{"keys": keys, "x_canary": Canary})
	if err != nil {
		panic("hostile: an ExtraJWKs entry is not JSON: " + err.Error())
	}
	return b
}

func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	h := p.JWKS
	p.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(p.KeySet())
}

// IDClaims are valid ID token claims: iss, aud (ClientID), sub
// (DefaultSubject), exp in 5 minutes, iat now, nonce (DefaultNonce).
func (p *Provider) IDClaims() map[string]any {
	now := p.Now()
	return map[string]any{
		"iss":   p.Issuer,
		"aud":   p.ClientID,
		"sub":   DefaultSubject,
		"exp":   now.Add(5 * time.Minute).Unix(),
		"iat":   now.Unix(),
		"nonce": DefaultNonce,
		"sid":   "sid-" + randomHex(4),
	}
}

// LogoutClaims are valid back-channel logout token claims: iss, aud, iat,
// exp, a fresh jti, sub, sid and the back-channel logout event.
func (p *Provider) LogoutClaims() map[string]any {
	now := p.Now()
	return map[string]any{
		"iss": p.Issuer,
		"aud": p.ClientID,
		"iat": now.Unix(),
		"exp": now.Add(2 * time.Minute).Unix(),
		"jti": randomHex(8),
		"sub": DefaultSubject,
		"sid": "sid-1",
		"events": map[string]any{
			"http://schemas.openid.net/event/backchannel-logout": map[string]any{},
		},
	}
}

// TokenResponse is a successful token response body with a fresh access
// and refresh token and idToken, which is left out when empty.
func (p *Provider) TokenResponse(idToken string) map[string]any {
	m := map[string]any{
		"access_token":  "at-" + randomHex(12),
		"token_type":    "Bearer",
		"expires_in":    300,
		"refresh_token": "rt-" + randomHex(12),
		"scope":         "openid profile",
		"x_canary":      Canary,
	}
	if idToken != "" {
		m["id_token"] = idToken
	}
	return m
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "x_canary": Canary})
		return
	}
	p.mu.Lock()
	p.forms = append(p.forms, r.PostForm)
	h, build := p.Token, p.TokenJSON
	if r.PostForm.Get("grant_type") == "refresh_token" && p.Refresh != nil {
		h = p.Refresh
	}
	p.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	if build == nil {
		build = func(url.Values) map[string]any {
			id, err := p.mint(Token{Claims: p.IDClaimsFor(r.PostForm)})
			if err != nil {
				panic("hostile: " + err.Error())
			}
			return p.TokenResponse(id)
		}
	}
	writeJSON(w, http.StatusOK, build(r.PostForm))
}

func (p *Provider) revocation(w http.ResponseWriter, r *http.Request) {
	p.flow.revoked(r)
	p.mu.Lock()
	h := p.Revocation
	p.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	w.WriteHeader(http.StatusOK)
}

// UserInfoDefaults are the claims of a default userinfo answer: sub
// DefaultSubject, email DefaultEmail and the Canary.
func (p *Provider) UserInfoDefaults() map[string]any {
	return map[string]any{"sub": DefaultSubject, "email": DefaultEmail, "x_canary": Canary}
}

// UserInfoBearers are the bearer tokens of all userinfo requests so far.
func (p *Provider) UserInfoBearers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bearers...)
}

func (p *Provider) userInfo(w http.ResponseWriter, r *http.Request) {
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	p.bearers = append(p.bearers, bearer)
	h, build, signed := p.UserInfo, p.UserInfoClaims, p.UserInfoSigned
	p.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	if bearer == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_token", "x_canary": Canary})
		return
	}
	claims := p.UserInfoDefaults()
	if build != nil {
		claims = build(bearer)
	}
	if !signed {
		writeJSON(w, http.StatusOK, claims)
		return
	}
	jws, err := p.mint(Token{Claims: claims})
	if err != nil {
		panic("hostile: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/jwt")
	_, _ = io.WriteString(w, jws)
}

// Hang answers nothing until the client gives up or the test ends.
func (p *Provider) Hang(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-p.done:
	}
}

// Huge writes a 200 JSON-looking body of n bytes (the Canary repeated) and
// stops early when the client hangs up.
func Huge(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		chunk := []byte(strings.Repeat(Canary+" ", 4096/(len(Canary)+1)))
		if _, err := io.WriteString(w, `{"access_token":"`); err != nil {
			return
		}
		for written := 0; written < n; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `"}`)
	}
}

// Redirect answers 302 to target.
func Redirect(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusFound)
		_, _ = io.WriteString(w, Canary)
	}
}

// Status answers code with a JSON body of members plus the Canary.
func Status(code int, members map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m := map[string]any{"x_canary": Canary}
		for k, v := range members {
			m[k] = v
		}
		writeJSON(w, code, m)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Attacker is a server the attacker controls. It answers every request
// with a JSON body (its own JWKS at /jwks.json, a PEM certificate at
// /cert.pem, a discovery-looking document elsewhere) and counts them: a
// client that is never lured there leaves Requests at 0.
type Attacker struct {
	URL string
	// Key is the attacker's RSA key, kid "attacker".
	Key *Key
	// Cert is a self-signed DER certificate for Key, for x5c headers.
	Cert []byte

	mu    sync.Mutex
	paths []string
}

func newAttacker(t testing.TB) *Attacker {
	a := &Attacker{Key: NewRSAKey(t, "attacker")}
	a.Cert = a.Key.Certificate(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.paths = append(a.paths, r.Method+" "+r.URL.Path)
		a.mu.Unlock()
		switch r.URL.Path {
		case "/jwks.json":
			writeJSON(w, http.StatusOK, map[string]any{"keys": []any{a.Key.JWK()}, "x_canary": Canary})
		case "/cert.pem":
			_, _ = w.Write(a.Key.PublicPEM())
		default:
			writeJSON(w, http.StatusOK, map[string]any{
				"issuer": a.URL, "access_token": "stolen", "token_type": "Bearer", "x_canary": Canary,
			})
		}
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// Requests is how many requests the attacker's server received.
func (a *Attacker) Requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.paths)
}

// Paths are "METHOD /path" of every request the attacker received.
func (a *Attacker) Paths() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...)
}
