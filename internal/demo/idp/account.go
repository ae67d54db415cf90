package idp

import (
	"maps"
	"net/http"
	"slices"
)

// LogoutSID ends the provider login session with public session id sid,
// as if its browser had signed out, and sends back-channel logout tokens
// to the clients that received a code in it. Unknown sids are ignored.
func (p *Provider) LogoutSID(sid string) {
	p.mu.Lock()
	var notices []logoutNotice
	if key := p.sids[sid]; key != "" && p.sessions[key] != nil {
		notices = p.endSessionLocked(key, p.sessions[key], "LogoutSID")
	}
	p.mu.Unlock()
	p.sendLogouts(notices)
}

// LogoutSubject ends every provider login session of the user sub, in
// every browser, and sends back-channel logout tokens naming each
// session's sid to the clients that received a code in it.
func (p *Provider) LogoutSubject(sub string) {
	p.mu.Lock()
	notices := p.logoutSubjectLocked(sub, "LogoutSubject")
	p.mu.Unlock()
	p.sendLogouts(notices)
}

func (p *Provider) logoutSubjectLocked(sub, why string) []logoutNotice {
	var notices []logoutNotice
	// By sid, so that notices go out in a stable order.
	for _, sid := range slices.Sorted(maps.Keys(p.sids)) {
		key := p.sids[sid]
		if s := p.sessions[key]; s != nil && s.sub == sub {
			notices = append(notices, p.endSessionLocked(key, s, why)...)
		}
	}
	return notices
}

type accountPageData struct {
	Title, Banner                     string
	Username, Subject, SID            string // empty when not signed in
	EndSessionAction, LogoutAllAction string
}

// serveAccount shows who is signed in at the provider in this browser,
// with buttons to sign out of this browser or of every browser.
func (p *Provider) serveAccount(w http.ResponseWriter, r *http.Request) {
	d := accountPageData{
		Title:            "Account",
		Banner:           Banner,
		EndSessionAction: p.prefix + "/end_session",
		LogoutAllAction:  p.prefix + "/logout_all",
	}
	now := p.now()
	p.mu.Lock()
	if _, s := p.sessionLocked(r, now); s != nil {
		d.Subject, d.SID = s.sub, s.sid
		if u := p.subjects[s.sub]; u != nil {
			d.Username = u.Username
		}
	}
	p.mu.Unlock()
	p.renderPage(w, http.StatusOK, "account", d)
}

// serveLogoutAll ends every login session of the browser's user and
// returns to the account page.
func (p *Provider) serveLogoutAll(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, http.StatusBadRequest, "Invalid sign-out request", "The form could not be read.")
		return
	}
	now := p.now()
	var notices []logoutNotice
	p.mu.Lock()
	if _, s := p.sessionLocked(r, now); s != nil {
		notices = p.logoutSubjectLocked(s.sub, "logout_all")
	}
	p.mu.Unlock()
	p.sendLogouts(notices)

	http.SetCookie(w, p.sessionCookie("", -1))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.prefix+"/account", http.StatusSeeOther)
}
