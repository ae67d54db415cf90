package idp

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// authRequest is a validated authorization request.
type authRequest struct {
	clientID, redirectURI, state, nonce, challenge string
	scopes                                         []string
	audience                                       []string // audience and resource parameters
	prompt                                         []string
	maxAge                                         time.Duration // -1 when absent
	loginHint                                      string
}

// loginRequest is an authorization request waiting for the login form,
// found again by the form's hidden handle.
type loginRequest struct {
	req     authRequest
	expires time.Time
}

// authCode is an issued authorization code: single use, bound to the
// request it answers and the login session that approved it.
type authCode struct {
	req      authRequest
	sub, sid string
	authTime time.Time
	expires  time.Time
	used     bool
	grant    string // grant created when the code was redeemed
}

// authError is an error sent back to the client's redirect URI.
type authError struct {
	code, desc string
}

var errTooMany = errors.New("too many pending requests")

// singleParams may appear at most once in an authorization request (RFC 6749 3.1).
var singleParams = []string{
	"response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method",
	"prompt", "max_age", "response_mode", "login_hint",
}

// parseAuthRequest validates an authorization request. A non-empty page is
// an error about the client or redirect URI, to be shown to the user and
// never redirected; an authError is redirected to req.redirectURI.
func (p *Provider) parseAuthRequest(q url.Values) (req authRequest, page string, aerr *authError) {
	if len(q["client_id"]) != 1 || len(q["redirect_uri"]) > 1 {
		return req, "The request needs exactly one client_id and one redirect_uri.", nil
	}
	c := p.clients[q.Get("client_id")]
	if c == nil {
		return req, "Unknown client_id " + strconv.Quote(q.Get("client_id")) + ".", nil
	}
	if !slices.Contains(c.RedirectURIs, q.Get("redirect_uri")) {
		return req, "The redirect_uri " + strconv.Quote(q.Get("redirect_uri")) + " is not registered for client " + strconv.Quote(c.ID) + ".", nil
	}
	req = authRequest{clientID: c.ID, redirectURI: q.Get("redirect_uri"), state: q.Get("state"), maxAge: -1}

	bad := func(code, desc string) (authRequest, string, *authError) {
		return req, "", &authError{code: code, desc: desc}
	}
	for _, k := range singleParams {
		if len(q[k]) > 1 {
			return bad("invalid_request", "parameter "+k+" appears more than once")
		}
	}
	switch {
	case q.Has("request"):
		return bad("request_not_supported", "request objects are not supported")
	case q.Has("request_uri"):
		return bad("request_uri_not_supported", "request_uri is not supported")
	case q.Get("response_type") != "code":
		return bad("unsupported_response_type", "response_type must be code")
	case q.Has("response_mode") && q.Get("response_mode") != "query":
		return bad("invalid_request", "response_mode must be query")
	case req.state == "":
		return bad("invalid_request", "state is required")
	case q.Get("nonce") == "":
		return bad("invalid_request", "nonce is required")
	case q.Get("code_challenge_method") != "S256":
		return bad("invalid_request", "PKCE is required: code_challenge_method must be S256")
	case !isS256Challenge(q.Get("code_challenge")):
		return bad("invalid_request", "code_challenge must be a base64url SHA-256 digest")
	}
	req.nonce = q.Get("nonce")
	req.challenge = q.Get("code_challenge")
	req.loginHint = q.Get("login_hint")

	scopes, ok := parseScopes(q.Get("scope"))
	if !ok || !slices.Contains(scopes, "openid") {
		return bad("invalid_scope", "scope must include openid")
	}
	req.scopes = scopes

	for _, pr := range strings.Fields(q.Get("prompt")) {
		switch pr {
		case "none", "login", "consent", "select_account":
			req.prompt = append(req.prompt, pr)
		default:
			return bad("invalid_request", "unsupported prompt value "+strconv.Quote(pr))
		}
	}
	if slices.Contains(req.prompt, "none") && len(req.prompt) > 1 {
		return bad("invalid_request", "prompt none cannot be combined with other values")
	}
	if q.Has("max_age") {
		n, err := strconv.ParseUint(q.Get("max_age"), 10, 31)
		if err != nil {
			return bad("invalid_request", "max_age must be a non-negative integer")
		}
		req.maxAge = time.Duration(n) * time.Second
	}
	aud, err := parseAudiences(q)
	if err != nil {
		return bad(err.code, err.desc)
	}
	req.audience = aud
	return req, "", nil
}

func (p *Provider) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	req, page, aerr := p.parseAuthRequest(r.URL.Query())
	if page != "" {
		p.log.Warn("idp: authorization request refused", "reason", page)
		p.errorPage(w, http.StatusBadRequest, "Invalid authorization request", page)
		return
	}
	if aerr != nil {
		p.log.Warn("idp: authorization request refused", "client_id", req.clientID, "error", aerr.code, "reason", aerr.desc)
		p.redirectError(w, r, req, aerr)
		return
	}

	now := p.now()
	p.mu.Lock()
	p.pruneLocked(now)
	_, sess := p.sessionLocked(r, now)
	stale := sess != nil && req.maxAge >= 0 && now.Sub(sess.authTime) >= req.maxAge
	if sess != nil && !stale && !slices.Contains(req.prompt, "login") {
		loc, err := p.issueCodeLocked(req, sess, now)
		p.mu.Unlock()
		if err != nil {
			p.errorPage(w, http.StatusServiceUnavailable, "Try again later", "The provider is busy.")
			return
		}
		http.Redirect(w, r, loc, http.StatusFound)
		return
	}
	if slices.Contains(req.prompt, "none") {
		p.mu.Unlock()
		p.redirectError(w, r, req, &authError{code: "login_required", desc: "the user is not signed in"})
		return
	}
	handle, err := p.newLoginRequestLocked(req, now)
	p.mu.Unlock()
	if err != nil {
		p.errorPage(w, http.StatusServiceUnavailable, "Try again later", "The provider is busy.")
		return
	}
	p.loginPage(w, loginPageData{ClientID: req.clientID, Username: req.loginHint, Handle: handle})
}

// serveLogin handles the login form.
func (p *Provider) serveLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, http.StatusBadRequest, "Invalid sign-in request", "The form could not be read.")
		return
	}
	handle := r.PostForm.Get("request")
	username := r.PostForm.Get("username")
	password := r.PostForm.Get("password")

	now := p.now()
	p.mu.Lock()
	p.pruneLocked(now)
	lr := p.requests[hashKey(handle)]
	if lr == nil || !now.Before(lr.expires) {
		p.mu.Unlock()
		p.errorPage(w, http.StatusBadRequest, "Sign-in request expired",
			"This sign-in request is unknown or has expired. Go back to the application and sign in again.")
		return
	}
	u := p.users[username]
	if !passwordMatches(u, password) {
		p.mu.Unlock()
		p.log.Warn("idp: login failed", "username", username, "client_id", lr.req.clientID)
		p.loginPage(w, loginPageData{ClientID: lr.req.clientID, Username: username, Handle: handle, Error: "Wrong username or password."})
		return
	}
	if len(p.sessions) >= maxBrowserEntries {
		p.mu.Unlock()
		p.errorPage(w, http.StatusServiceUnavailable, "Try again later", "The provider is busy.")
		return
	}
	delete(p.requests, hashKey(handle))

	// A new cookie value on every login; the same user keeps their session
	// (and sid), another user's session ends.
	var notices []logoutNotice
	oldKey, sess := p.sessionLocked(r, now)
	if sess != nil && sess.sub != u.Subject {
		notices = p.endSessionLocked(oldKey, sess, "another user signed in")
		sess = nil
	}
	if sess != nil {
		delete(p.sessions, oldKey)
	} else {
		sess = &loginSession{sid: randomString(16), sub: u.Subject, clients: make(map[string]struct{})}
	}
	cookie := randomString(32)
	sess.authTime = now
	sess.expires = now.Add(p.sessionTTL)
	p.sessions[hashKey(cookie)] = sess
	p.sids[sess.sid] = hashKey(cookie)
	p.stats.Logins++
	loc, err := p.issueCodeLocked(lr.req, sess, now)
	p.mu.Unlock()
	p.sendLogouts(notices)

	p.log.Info("idp: login", "username", username, "sub", u.Subject, "sid", sess.sid, "client_id", lr.req.clientID)
	http.SetCookie(w, p.sessionCookie(cookie, int(p.sessionTTL/time.Second)))
	if err != nil {
		p.errorPage(w, http.StatusServiceUnavailable, "Try again later", "The provider is busy.")
		return
	}
	http.Redirect(w, r, loc, http.StatusFound)
}

// sessionLocked returns the live login session named by the request's
// cookie, and its key, or nil.
func (p *Provider) sessionLocked(r *http.Request, now time.Time) (string, *loginSession) {
	// Other servers on the same host may set a cookie of the same name;
	// any of them may be ours.
	for _, c := range r.CookiesNamed(SessionCookieName) {
		k := hashKey(c.Value)
		if s := p.sessions[k]; s != nil && now.Before(s.expires) {
			return k, s
		}
	}
	return "", nil
}

func (p *Provider) newLoginRequestLocked(req authRequest, now time.Time) (string, error) {
	if len(p.requests) >= maxBrowserEntries {
		return "", errTooMany
	}
	handle := randomString(32)
	p.requests[hashKey(handle)] = &loginRequest{req: req, expires: now.Add(loginRequestTTL)}
	return handle, nil
}

// issueCodeLocked creates a code for req approved by sess and returns the
// redirect carrying it.
func (p *Provider) issueCodeLocked(req authRequest, sess *loginSession, now time.Time) (string, error) {
	if len(p.codes) >= maxBrowserEntries {
		return "", errTooMany
	}
	code := randomString(32)
	p.codes[hashKey(code)] = &authCode{
		req:      req,
		sub:      sess.sub,
		sid:      sess.sid,
		authTime: sess.authTime,
		expires:  now.Add(codeTTL),
	}
	sess.clients[req.clientID] = struct{}{}
	return p.authResponseURL(req.redirectURI, url.Values{"code": {code}, "state": {req.state}}), nil
}

func (p *Provider) redirectError(w http.ResponseWriter, r *http.Request, req authRequest, e *authError) {
	v := url.Values{"error": {e.code}, "error_description": {e.desc}}
	if req.state != "" {
		v.Set("state", req.state)
	}
	http.Redirect(w, r, p.authResponseURL(req.redirectURI, v), http.StatusFound)
}

// authResponseURL adds params and the RFC 9207 iss to a registered redirect URI.
func (p *Provider) authResponseURL(redirectURI string, params url.Values) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		// Registered URIs were parsed in New.
		panic("idp: registered redirect URI does not parse: " + err.Error())
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	q.Set("iss", p.issuer)
	u.RawQuery = q.Encode()
	return u.String()
}

func passwordMatches(u *User, password string) bool {
	want := "\x00no user"
	if u != nil {
		want = u.Password
	}
	a, b := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1 && u != nil
}

// isS256Challenge reports whether s looks like BASE64URL(SHA256(verifier)).
func isS256Challenge(s string) bool {
	return len(s) == 43 && strings.Trim(s, base64URLChars) == ""
}

// isVerifier reports whether s is a valid PKCE code verifier (RFC 7636 4.1).
func isVerifier(s string) bool {
	return len(s) >= 43 && len(s) <= 128 && strings.Trim(s, base64URLChars+".~") == ""
}

const base64URLChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// parseScopes splits a scope parameter (RFC 6749 3.3), dropping duplicates.
func parseScopes(s string) ([]string, bool) {
	var out []string
	for _, t := range strings.Split(s, " ") {
		if t == "" {
			continue
		}
		for _, c := range t {
			if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
				return nil, false
			}
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, true
}

func joinScopes(s []string) string { return strings.Join(s, " ") }

// parseAudiences reads the audience parameters and the RFC 8707 resource
// parameters, which must be absolute URIs without a fragment.
func parseAudiences(form url.Values) ([]string, *authError) {
	var out []string
	for _, a := range form["audience"] {
		if a == "" {
			return nil, &authError{code: "invalid_target", desc: "empty audience"}
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, res := range form["resource"] {
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || strings.Contains(res, "#") {
			return nil, &authError{code: "invalid_target", desc: "resource must be an absolute URI without a fragment"}
		}
		if !slices.Contains(out, res) {
			out = append(out, res)
		}
	}
	return out, nil
}
