package idp

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// serveEndSession implements OIDC RP-Initiated Logout 1.0. It ends the
// browser's login session and, when id_token_hint names a live session of
// the same subject, that one too, and sends back-channel logout tokens to
// the clients of the ended sessions. Refresh tokens of the ended sessions
// stay valid: relying parties revoke theirs (RFC 7009) on logout.
func (p *Provider) serveEndSession(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	}
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, http.StatusBadRequest, "Invalid logout request", "The request could not be read.")
		return
	}
	f := r.Form

	var client *Client
	var hint map[string]any
	if h := f.Get("id_token_hint"); h != "" {
		// Expired ID tokens are fine here (OIDC RP-Initiated Logout 2).
		claims, err := p.parseJWT(h, typeIDToken)
		if err != nil {
			p.log.Warn("idp: logout refused", "reason", "invalid id_token_hint", "err", err)
			p.errorPage(w, http.StatusBadRequest, "Invalid logout request", "The id_token_hint is not valid.")
			return
		}
		id, _ := claims["azp"].(string)
		if aud := audiences(claims); id == "" && len(aud) == 1 {
			id = aud[0]
		}
		if client = p.clients[id]; client == nil || !slices.Contains(audiences(claims), id) {
			p.errorPage(w, http.StatusBadRequest, "Invalid logout request", "The id_token_hint was not issued to a known client.")
			return
		}
		hint = claims
	}
	if id := f.Get("client_id"); id != "" {
		c := p.clients[id]
		switch {
		case c == nil:
			p.errorPage(w, http.StatusBadRequest, "Invalid logout request", "Unknown client_id "+strconv.Quote(id)+".")
			return
		case client != nil && client != c:
			p.errorPage(w, http.StatusBadRequest, "Invalid logout request", "The client_id does not match the id_token_hint.")
			return
		}
		client = c
	}
	redirect := f.Get("post_logout_redirect_uri")
	if redirect != "" {
		if client == nil {
			p.errorPage(w, http.StatusBadRequest, "Invalid logout request", "A post_logout_redirect_uri needs an id_token_hint or a client_id.")
			return
		}
		if !slices.Contains(client.PostLogoutRedirectURIs, redirect) {
			p.log.Warn("idp: logout refused", "client_id", client.ID, "reason", "unregistered post_logout_redirect_uri")
			p.errorPage(w, http.StatusBadRequest, "Invalid logout request",
				"The post_logout_redirect_uri "+strconv.Quote(redirect)+" is not registered for client "+strconv.Quote(client.ID)+".")
			return
		}
	}

	now := p.now()
	var notices []logoutNotice
	p.mu.Lock()
	if key, s := p.sessionLocked(r, now); s != nil {
		notices = p.endSessionLocked(key, s, "end_session")
	}
	if hint != nil {
		sid, _ := hint["sid"].(string)
		sub, _ := hint["sub"].(string)
		if key := p.sids[sid]; key != "" && p.sessions[key] != nil && p.sessions[key].sub == sub {
			notices = append(notices, p.endSessionLocked(key, p.sessions[key], "end_session id_token_hint")...)
		}
	}
	p.stats.EndSessions++
	p.mu.Unlock()
	p.sendLogouts(notices)

	http.SetCookie(w, p.sessionCookie("", -1))
	w.Header().Set("Cache-Control", "no-store")
	if redirect != "" {
		u, err := url.Parse(redirect)
		if err != nil {
			// Registered URIs were parsed in New.
			panic("idp: registered post-logout redirect URI does not parse: " + err.Error())
		}
		if state := f.Get("state"); state != "" {
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
		}
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	p.errorPage(w, http.StatusOK, "Signed out", "You are signed out of the development OpenID provider.")
}
