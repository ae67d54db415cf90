package idp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// oauthError is an RFC 6749 5.2 error response.
type oauthError struct {
	status     int
	code, desc string
}

func badRequest(code, desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: code, desc: desc}
}

func invalidGrant(desc string) *oauthError { return badRequest("invalid_grant", desc) }

func invalidClient(desc string) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: desc}
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="idp"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// readForm parses a size-limited application/x-www-form-urlencoded body
// into r.PostForm.
func readForm(w http.ResponseWriter, r *http.Request) *oauthError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return badRequest("invalid_request", "body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return badRequest("invalid_request", "malformed form body")
	}
	return nil
}

// authenticateClient checks client_secret_basic or client_secret_post
// credentials; a request may use only one of them.
func (p *Provider) authenticateClient(r *http.Request) (*Client, *oauthError) {
	id, secret, basic := r.BasicAuth()
	switch {
	case basic && r.PostForm.Has("client_secret"):
		return nil, badRequest("invalid_request", "use one client authentication method")
	case basic:
		// RFC 6749 2.3.1 form-encodes both parts; accept raw values too.
		if uid, err := url.QueryUnescape(id); err == nil {
			id = uid
		}
		if cid := r.PostForm.Get("client_id"); cid != "" && cid != id {
			return nil, badRequest("invalid_request", "client_id does not match the authenticated client")
		}
		c := p.clients[id]
		if c == nil {
			return nil, invalidClient("client authentication failed")
		}
		if secretMatches(c.Secret, secret) {
			return c, nil
		}
		if us, err := url.QueryUnescape(secret); err == nil && secretMatches(c.Secret, us) {
			return c, nil
		}
		return nil, invalidClient("client authentication failed")
	case r.PostForm.Has("client_secret"):
		c := p.clients[r.PostForm.Get("client_id")]
		if c == nil || !secretMatches(c.Secret, r.PostForm.Get("client_secret")) {
			return nil, invalidClient("client authentication failed")
		}
		return c, nil
	default:
		return nil, invalidClient("client authentication required")
	}
}

func secretMatches(want, got string) bool {
	a, b := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	grantType := ""
	clientID := ""
	resp, e := func() (map[string]any, *oauthError) {
		if e := readForm(w, r); e != nil {
			return nil, e
		}
		grantType = r.PostForm.Get("grant_type")
		c, e := p.authenticateClient(r)
		if e != nil {
			return nil, e
		}
		clientID = c.ID
		for k, v := range r.PostForm {
			if len(v) > 1 && k != "resource" && k != "audience" {
				return nil, badRequest("invalid_request", "parameter "+k+" appears more than once")
			}
		}
		switch grantType {
		case "authorization_code":
			return p.codeGrant(c, r.PostForm)
		case "refresh_token":
			return p.refreshGrant(c, r.PostForm)
		case "client_credentials":
			return p.clientCredentialsGrant(c, r.PostForm)
		case GrantTypeTokenExchange:
			return p.tokenExchangeGrant(c, r.PostForm)
		case "":
			return nil, badRequest("invalid_request", "grant_type is required")
		default:
			return nil, badRequest("unsupported_grant_type", "unsupported grant_type")
		}
	}()
	if e != nil {
		p.mu.Lock()
		p.stats.FailedGrants++
		p.mu.Unlock()
		p.log.Warn("idp: token request failed", "grant_type", grantType, "client_id", clientID, "error", e.code, "reason", e.desc)
		writeOAuthError(w, e)
		return
	}
	p.log.Info("idp: token issued", "grant_type", grantType, "client_id", clientID)
	writeJSON(w, http.StatusOK, resp)
}

// idParams describes the ID token of a token response.
type idParams struct {
	user     *User
	sid      string
	nonce    string
	scopes   []string
	authTime time.Time
}

// issueLocked signs an access token (and optionally a refresh token and an
// ID token) for client c, records them under grant gid ("" for none) and
// returns the token response.
func (p *Provider) issueLocked(c *Client, gid string, ac accessClaims, withRefresh bool, id *idParams, now time.Time) (map[string]any, *oauthError) {
	jti := randomString(16)
	at, err := p.sign(typeAccessToken, p.accessTokenClaims(ac, jti, now))
	if err != nil {
		p.log.Error("idp: sign access token", "err", err)
		return nil, &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "internal error"}
	}
	exp := now.Add(p.accessTTL)
	p.access[jti] = &accessToken{grant: gid, clientID: c.ID, expires: exp}
	g := p.grants[gid]
	if g != nil {
		g.access = append(g.access, jti)
		g.expires = later(g.expires, exp)
	}
	resp := map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   int64(p.accessTTL / time.Second),
	}
	if len(ac.scopes) > 0 {
		resp["scope"] = joinScopes(ac.scopes)
	}
	issued := []string{at}
	if withRefresh && g != nil {
		rt := randomString(32)
		rexp := now.Add(p.refreshTTL)
		p.refresh[hashKey(rt)] = &refreshToken{grant: gid, clientID: c.ID, expires: rexp}
		g.refresh = append(g.refresh, hashKey(rt))
		g.expires = later(g.expires, rexp)
		resp["refresh_token"] = rt
		issued = append(issued, rt)
	}
	if id != nil {
		idt, err := p.sign(typeIDToken, p.idTokenClaims(id.user, c.ID, id.sid, id.nonce, id.scopes, id.authTime, now, at))
		if err != nil {
			p.log.Error("idp: sign ID token", "err", err)
			return nil, &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "internal error"}
		}
		resp["id_token"] = idt
		issued = append(issued, idt)
	}
	p.recordIssuedLocked(issued...)
	return resp, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// requestedAudience reads audience and resource parameters; def applies
// when there are none.
func requestedAudience(form url.Values, def []string) ([]string, *oauthError) {
	aud, e := parseAudiences(form)
	if e != nil {
		return nil, badRequest(e.code, e.desc)
	}
	if len(aud) == 0 {
		return def, nil
	}
	return aud, nil
}

func (p *Provider) codeGrant(c *Client, form url.Values) (map[string]any, *oauthError) {
	code := form.Get("code")
	if code == "" {
		return nil, badRequest("invalid_request", "code is required")
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pruneLocked(now)
	ac := p.codes[hashKey(code)]
	if ac == nil || !now.Before(ac.expires) {
		return nil, invalidGrant("unknown or expired authorization code")
	}
	if ac.used {
		// RFC 6749 4.1.2: a code used twice revokes what it granted.
		p.revokeGrantLocked(ac.grant, "authorization code reused")
		return nil, invalidGrant("authorization code already used")
	}
	// Any attempt burns the code, so a guessed verifier gets one try.
	ac.used = true
	switch {
	case ac.req.clientID != c.ID:
		return nil, invalidGrant("authorization code was issued to another client")
	case form.Get("redirect_uri") != ac.req.redirectURI:
		return nil, invalidGrant("redirect_uri does not match the authorization request")
	case !pkceMatches(form.Get("code_verifier"), ac.req.challenge):
		return nil, invalidGrant("PKCE verification failed")
	}
	user := p.subjects[ac.sub]
	if user == nil {
		return nil, invalidGrant("unknown user")
	}
	defAud := ac.req.audience
	if len(defAud) == 0 {
		defAud = []string{c.ID}
	}
	aud, e := requestedAudience(form, defAud)
	if e != nil {
		return nil, e
	}

	gid := randomString(16)
	p.grants[gid] = &grant{
		clientID: c.ID, sub: ac.sub, sid: ac.sid,
		scopes: ac.req.scopes, audience: ac.req.audience, authTime: ac.authTime,
		expires: ac.expires,
	}
	ac.grant = gid
	resp, e := p.issueLocked(c, gid,
		accessClaims{sub: ac.sub, clientID: c.ID, sid: ac.sid, aud: aud, scopes: ac.req.scopes, user: user, authTime: ac.authTime},
		slices.Contains(ac.req.scopes, "offline_access"),
		&idParams{user: user, sid: ac.sid, nonce: ac.req.nonce, scopes: ac.req.scopes, authTime: ac.authTime},
		now)
	if e != nil {
		return nil, e
	}
	p.stats.AuthCodeGrants++
	return resp, nil
}

func pkceMatches(verifier, challenge string) bool {
	if !isVerifier(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

func (p *Provider) refreshGrant(c *Client, form url.Values) (map[string]any, *oauthError) {
	token := form.Get("refresh_token")
	if token == "" {
		return nil, badRequest("invalid_request", "refresh_token is required")
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pruneLocked(now)
	rt := p.refresh[hashKey(token)]
	if rt == nil || !now.Before(rt.expires) {
		return nil, invalidGrant("unknown or expired refresh token")
	}
	if rt.clientID != c.ID {
		return nil, invalidGrant("refresh token was issued to another client")
	}
	g := p.grants[rt.grant]
	if rt.revoked || g == nil || g.revoked {
		return nil, invalidGrant("refresh token revoked")
	}
	if rt.used {
		if p.reuseDetection {
			p.revokeGrantLocked(rt.grant, "rotated refresh token reused")
			return nil, invalidGrant("refresh token already used; grant revoked")
		}
		return nil, invalidGrant("refresh token already used")
	}

	scopes := g.scopes
	if form.Has("scope") {
		req, ok := parseScopes(form.Get("scope"))
		if !ok || len(req) == 0 {
			return nil, badRequest("invalid_scope", "malformed scope")
		}
		for _, s := range req {
			if !slices.Contains(g.scopes, s) {
				return nil, badRequest("invalid_scope", "scope exceeds the original grant")
			}
		}
		scopes = req
	}
	defAud := g.audience
	if len(defAud) == 0 {
		defAud = []string{c.ID}
	}
	aud, e := requestedAudience(form, defAud)
	if e != nil {
		return nil, e
	}
	user := p.subjects[g.sub]
	if user == nil {
		return nil, invalidGrant("unknown user")
	}
	var id *idParams
	if slices.Contains(scopes, "openid") {
		id = &idParams{user: user, sid: g.sid, scopes: scopes, authTime: g.authTime}
	}
	resp, e := p.issueLocked(c, rt.grant,
		accessClaims{sub: g.sub, clientID: c.ID, sid: g.sid, aud: aud, scopes: scopes, user: user, authTime: g.authTime},
		p.rotate, id, now)
	if e != nil {
		return nil, e
	}
	if p.rotate {
		rt.used = true
	}
	p.stats.RefreshGrants++
	return resp, nil
}

func (p *Provider) clientCredentialsGrant(c *Client, form url.Values) (map[string]any, *oauthError) {
	scopes, ok := parseScopes(form.Get("scope"))
	if !ok {
		return nil, badRequest("invalid_scope", "malformed scope")
	}
	aud, e := requestedAudience(form, []string{c.ID})
	if e != nil {
		return nil, e
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pruneLocked(now)
	resp, e := p.issueLocked(c, "", accessClaims{sub: c.ID, clientID: c.ID, aud: aud, scopes: scopes}, false, nil, now)
	if e != nil {
		return nil, e
	}
	p.stats.ClientCredentialsGrants++
	return resp, nil
}

// tokenExchangeGrant implements RFC 8693 for access tokens this provider
// issued to, or for, the requesting client. Requested scopes are granted
// as asked; without scope the subject token's scopes carry over.
func (p *Provider) tokenExchangeGrant(c *Client, form url.Values) (map[string]any, *oauthError) {
	switch {
	case form.Get("subject_token") == "" || form.Get("subject_token_type") == "":
		return nil, badRequest("invalid_request", "subject_token and subject_token_type are required")
	case form.Get("subject_token_type") != TokenTypeAccessToken:
		return nil, badRequest("invalid_request", "unsupported subject_token_type")
	case form.Has("actor_token"):
		return nil, badRequest("invalid_request", "actor_token is not supported")
	case form.Has("requested_token_type") && form.Get("requested_token_type") != TokenTypeAccessToken:
		return nil, badRequest("invalid_request", "unsupported requested_token_type")
	}
	subject, err := p.VerifyAccessToken(form.Get("subject_token"))
	if err != nil {
		return nil, invalidGrant("subject_token is not valid")
	}
	if cid, _ := subject["client_id"].(string); cid != c.ID && !slices.Contains(audiences(subject), c.ID) {
		return nil, invalidGrant("subject_token was not issued to or for this client")
	}
	subjectScope, _ := subject["scope"].(string)
	scopes, _ := parseScopes(subjectScope)
	if form.Has("scope") {
		req, ok := parseScopes(form.Get("scope"))
		if !ok {
			return nil, badRequest("invalid_scope", "malformed scope")
		}
		scopes = req
	}
	aud, e := requestedAudience(form, []string{c.ID})
	if e != nil {
		return nil, e
	}
	sub, _ := subject["sub"].(string)
	sid, _ := subject["sid"].(string)
	var authTime time.Time
	if at, ok := subject["auth_time"].(float64); ok {
		authTime = time.Unix(int64(at), 0)
	}
	act := map[string]any{"sub": c.ID}
	if prev, ok := subject["act"].(map[string]any); ok {
		act["act"] = prev
	}
	jti, _ := subject["jti"].(string)

	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pruneLocked(now)
	st := p.access[jti]
	if st == nil || st.revoked {
		return nil, invalidGrant("subject_token is not valid")
	}
	resp, e := p.issueLocked(c, st.grant,
		accessClaims{sub: sub, clientID: c.ID, sid: sid, aud: aud, scopes: scopes, user: p.subjects[sub], authTime: authTime, act: act},
		false, nil, now)
	if e != nil {
		return nil, e
	}
	resp["issued_token_type"] = TokenTypeAccessToken
	p.stats.TokenExchangeGrants++
	return resp, nil
}

// serveRevoke implements RFC 7009. Revoking a refresh token revokes its
// whole grant, access tokens included; an access token is revoked alone.
// Unknown tokens, and tokens of other clients, are answered 200 and left alone.
func (p *Provider) serveRevoke(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if e := readForm(w, r); e != nil {
		writeOAuthError(w, e)
		return
	}
	c, e := p.authenticateClient(r)
	if e != nil {
		p.log.Warn("idp: revocation refused", "error", e.code, "reason", e.desc)
		writeOAuthError(w, e)
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeOAuthError(w, badRequest("invalid_request", "token is required"))
		return
	}
	var jti string
	if strings.Count(token, ".") == 2 {
		if claims, err := p.parseJWT(token, typeAccessToken); err == nil {
			jti, _ = claims["jti"].(string)
		}
	}
	p.mu.Lock()
	p.stats.Revocations++
	kind := "unknown"
	if rt := p.refresh[hashKey(token)]; rt != nil && rt.clientID == c.ID {
		rt.revoked = true
		p.revokeGrantLocked(rt.grant, "refresh token revoked")
		kind = "refresh_token"
	} else if at := p.access[jti]; jti != "" && at != nil && at.clientID == c.ID {
		at.revoked = true
		kind = "access_token"
	}
	p.mu.Unlock()
	p.log.Info("idp: revocation", "client_id", c.ID, "token_type", kind)
	w.WriteHeader(http.StatusOK)
}

// serveUserinfo answers the claims of the user an access token with the
// openid scope names, filtered by its scopes.
func (p *Provider) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	token, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="idp"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "bearer token required"})
		return
	}
	claims, err := p.VerifyAccessToken(token)
	var u *User
	if err == nil {
		sub, _ := claims["sub"].(string)
		u = p.subjects[sub]
	}
	if u == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="idp", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "access token is not valid"})
		return
	}
	scope, _ := claims["scope"].(string)
	scopes := strings.Fields(scope)
	if !slices.Contains(scopes, "openid") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="idp", error="insufficient_scope", scope="openid"`)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": "openid scope required"})
		return
	}
	out := userClaims(u, scopes)
	out["sub"] = u.Subject
	writeJSON(w, http.StatusOK, out)
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}
