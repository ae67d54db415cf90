package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloakroom/cloakroom/internal/demo/idp/loginform"
)

// sessionCookie is the gateway's default session cookie name.
const sessionCookie = "__Host-Http-cloakroom"

// callsPerSignIn is how many calls a signer makes with each new session
// before it forgets it and signs in again.
const callsPerSignIn = 4

// load is the load generator: virtual users with cookie jars of their own
// on keep-alive connections, each doing one request at a time.
type load struct {
	base     string // HAProxy, http://127.0.0.1:PORT
	user     string // the provider's test user, also its password
	think    time.Duration
	cur      atomic.Pointer[scenario]
	gate     sync.RWMutex // held for writing while the fleet is reconfigured
	vus      []*vu
	inFlight atomic.Int64
}

// vu is one virtual user. A user signs in once and keeps its session;
// a signer signs in, makes callsPerSignIn calls and starts over with a
// fresh cookie jar, as a new browser would.
type vu struct {
	l        *load
	id       int
	signer   bool
	client   *http.Client
	tr       *http.Transport
	signedIn bool
	since    time.Time // when the current session was signed in
	calls    int
	backoff  time.Duration
	// in is the scenario the current session was signed in during.
	in *scenario
	// past are the sessions a signer left behind without signing out:
	// they must all still be there at the final check.
	past []pastSession
}

// pastSession is a session a signer left: its cookie jar, and the
// scenario it was signed in during.
type pastSession struct {
	jar   http.CookieJar
	in    *scenario
	since time.Time
}

// loopbackDialer dials 127.0.0.1 only, whatever host a URL names.
func loopbackDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", port))
	}
}

func newVU(l *load, id int, signer bool) *vu {
	tr := &http.Transport{
		DialContext:         loopbackDialer(),
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	v := &vu{l: l, id: id, signer: signer, tr: tr}
	v.client = &http.Client{
		Transport:     tr,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	v.newJar()
	return v
}

// newJar starts a new browser profile: no cookies, not signed in.
func (v *vu) newJar() {
	j, _ := cookiejar.New(nil)
	v.client.Jar = secureJar{j}
	v.signedIn = false
	v.calls = 0
}

// run loops until ctx ends: one step, then the think time.
func (v *vu) run(ctx context.Context) {
	for ctx.Err() == nil {
		v.l.gate.RLock()
		v.step(ctx)
		v.l.gate.RUnlock()
		pause := v.l.think + v.backoff
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// step signs in when the user has no session, and otherwise makes one
// call: /bff/user and the API in turn.
func (v *vu) step(ctx context.Context) {
	if !v.signedIn {
		if v.signIn(ctx) {
			v.backoff = 0
		} else {
			v.backoff = min(2*v.backoff+50*time.Millisecond, time.Second)
		}
		return
	}
	path := "/bff/user"
	if v.calls%2 == 1 {
		path = "/api/whoami"
	}
	v.calls++
	v.call(ctx, path)
	if v.signer && v.calls >= callsPerSignIn && v.signedIn {
		v.past = append(v.past, pastSession{jar: v.client.Jar, in: v.in, since: v.since})
		v.newJar()
	}
}

// call makes one signed-in call and records it; a 401 is a lost session.
func (v *vu) call(ctx context.Context, path string) int {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.l.base+path, nil)
	req.Header.Set("X-CSRF", "1")
	resp, body, err := v.do(req)
	if ctx.Err() != nil {
		return 0
	}
	sc := v.l.cur.Load()
	sc.record(resp, err, req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		sc.lostSession(v.in, fmt.Sprintf("vu %d: %s answered 401 (%s) to a session signed in %s before",
			v.id, path, describe401(resp, body), time.Since(v.since).Round(time.Millisecond)))
		v.newJar()
	}
	if err != nil {
		return 0
	}
	return resp.StatusCode
}

// describe401 tells the gateway's own 401 (an empty body: no session, or
// a refresh token the provider refused) from the API's (a bearer it
// refused, with WWW-Authenticate). Neither carries a secret.
func describe401(resp *http.Response, body string) string {
	if body == "" {
		return "the gateway's, empty"
	}
	if len(body) > 100 {
		body = body[:100]
	}
	return fmt.Sprintf("WWW-Authenticate %q, body %q", resp.Header.Get("WWW-Authenticate"), body)
}

// do sends req and reads (at most 1 MiB of) the body.
func (v *vu) do(req *http.Request) (*http.Response, string, error) {
	v.l.inFlight.Add(1)
	defer v.l.inFlight.Add(-1)
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b), err
}

// signIn signs in like a browser: /bff/login through HAProxy, the
// provider's login form, the callback through HAProxy. It reports whether
// the user now holds a session. A gateway answer of 503 (Redis
// unreachable) ends the attempt; the user tries again after a backoff.
func (v *vu) signIn(ctx context.Context) bool {
	v.newJar()
	sc := v.l.cur.Load()
	gw := func(u string) (*http.Response, bool) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			sc.violation("sign-in: " + err.Error())
			return nil, false
		}
		resp, _, err := v.do(req)
		if ctx.Err() != nil {
			return nil, false
		}
		sc.record(resp, err, req)
		return resp, err == nil && resp.StatusCode < 400
	}
	resp, ok := gw(v.l.base + "/bff/login?returnUrl=/")
	if !ok {
		sc.signInFailed()
		return false
	}
	auth, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil {
		sc.violation(fmt.Sprintf("sign-in: /bff/login answered %d, want a redirect to the provider", resp.StatusCode))
		return false
	}
	cb, err := v.providerLogin(ctx, auth)
	if err != nil {
		if ctx.Err() == nil {
			sc.violation("sign-in: provider: " + err.Error())
		}
		return false
	}
	if !strings.HasPrefix(cb.String(), v.l.base+"/bff/callback") {
		sc.violation("sign-in: the provider redirected elsewhere than the gateway's callback")
		return false
	}
	_, ok = gw(cb.String())
	has := v.hasSession()
	switch {
	case ok && has:
		v.signedIn, v.since, v.in = true, time.Now(), sc
		sc.signedIn()
		return true
	case ok:
		sc.violation("sign-in: the callback succeeded without setting the session cookie")
	case has:
		sc.violation("sign-in: a failed callback set the session cookie")
	default:
		sc.signInFailed()
	}
	return false
}

// providerLogin fills in the provider's login form and returns where the
// provider redirects: the gateway's callback.
func (v *vu) providerLogin(ctx context.Context, auth *url.URL) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, auth.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, page, err := v.do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("login page: status %d", resp.StatusCode)
	}
	action, form, err := loginform.Fill(auth, page, v.l.user, v.l.user)
	if err != nil {
		return nil, err
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _, err = v.do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("login form: status %d, want a redirect", resp.StatusCode)
	}
	return resp.Location()
}

func (v *vu) hasSession() bool {
	u, _ := url.Parse(v.l.base + "/")
	for _, c := range v.client.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return true
		}
	}
	return false
}

// secureJar treats http://127.0.0.1 as a secure origin, as browsers do,
// so that the gateway's Secure __Host- cookie is sent back.
type secureJar struct{ *cookiejar.Jar }

func asHTTPS(u *url.URL) *url.URL {
	if u.Scheme != "http" {
		return u
	}
	c := *u
	c.Scheme = "https"
	return &c
}

func (j secureJar) SetCookies(u *url.URL, cs []*http.Cookie) { j.Jar.SetCookies(asHTTPS(u), cs) }
func (j secureJar) Cookies(u *url.URL) []*http.Cookie        { return j.Jar.Cookies(asHTTPS(u)) }

// start starts users long-lived users and signers signers, and waits (at
// most 30s) until every long-lived user has signed in.
func (l *load) start(ctx context.Context, users, signers int, wg *sync.WaitGroup) error {
	for i := range users + signers {
		v := newVU(l, i, i >= users)
		l.vus = append(l.vus, v)
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.run(ctx)
		}()
	}
	return poll(ctx, nil, 30*time.Second, 50*time.Millisecond, func() bool {
		l.gate.Lock()
		defer l.gate.Unlock()
		for _, v := range l.vus[:users] {
			if !v.signedIn {
				return false
			}
		}
		return true
	})
}

// paused runs f while no virtual user is in a step, then drops every
// idle connection, since f may replace what they lead to.
func (l *load) paused(f func() error) error {
	l.gate.Lock()
	defer l.gate.Unlock()
	err := f()
	for _, v := range l.vus {
		v.tr.CloseIdleConnections()
	}
	return err
}

// finalCheck asks, after the load stopped, every session a user still
// holds and every session a signer left behind: each must still be
// signed in. Workers ask in parallel; a 401 is a lost session, named with
// the scenario it was signed in during.
func (l *load) finalCheck(ctx context.Context, sc *scenario) {
	type check struct {
		v    *vu
		past pastSession
	}
	var checks []check
	for _, v := range l.vus {
		if v.signedIn {
			checks = append(checks, check{v, pastSession{jar: v.client.Jar, in: v.in, since: v.since}})
		}
		for _, p := range v.past {
			checks = append(checks, check{v, p})
		}
	}
	work := make(chan check)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				client := *c.v.client
				client.Jar = c.past.jar
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/bff/user", nil)
				req.Header.Set("X-CSRF", "1")
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
					resp.Body.Close()
				}
				if ctx.Err() != nil {
					return
				}
				sc.record(resp, err, req)
				if err == nil && resp.StatusCode == http.StatusUnauthorized {
					sc.lostSession(c.past.in, fmt.Sprintf("vu %d: a session signed in during %q, %s before, answered 401",
						c.v.id, c.past.in.name, time.Since(c.past.since).Round(time.Millisecond)))
				}
			}
		}()
	}
	for _, c := range checks {
		select {
		case work <- c:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}
