package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"github.com/cloakroom/cloakroom/internal/demo/idp/loginform"
)

// secureJar treats http://localhost and 127.0.0.1 as secure origins, as
// browsers do, so the gateway's Secure __Host- cookie is sent back.
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

// login signs in at the gateway at base like a browser: /bff/login, the
// provider's login form, the callback, then /bff/user. It returns the
// session cookie.
func login(ctx context.Context, base string) (*http.Cookie, error) {
	c := newClient(1)
	defer c.CloseIdleConnections()
	return loginWith(ctx, c, base)
}

// loginWith is login on c's keep-alive connections, with a cookie jar of
// its own, like a new browser profile each time: the login scenario runs
// it in a loop.
func loginWith(ctx context.Context, c *http.Client, base string) (*http.Cookie, error) {
	j, _ := cookiejar.New(nil)
	jar := secureJar{j}
	client := *c
	client.Jar = jar

	get := func(u string, hdr ...string) (*http.Response, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, "", err
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return do(&client, req)
	}

	resp, _, err := get(base + "/bff/login?returnUrl=/")
	if err != nil {
		return nil, err
	}
	auth, err := redirect(resp, "/bff/login")
	if err != nil {
		return nil, err
	}
	resp, page, err := get(auth.String())
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("provider login page: status %d", resp.StatusCode)
	}
	action, form, err := loginform.Fill(auth, page, benchUser, benchUser)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _, err = do(&client, req)
	if err != nil {
		return nil, err
	}
	cb, err := redirect(resp, "provider login")
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(cb.String(), base+"/bff/callback") {
		return nil, fmt.Errorf("provider redirected to %s, want the gateway's callback", cb)
	}
	if resp, body, err := get(cb.String()); err != nil {
		return nil, err
	} else if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("callback: status %d: %.300s", resp.StatusCode, body)
	}
	if resp, body, err := get(base+"/bff/user", "X-CSRF", "1"); err != nil {
		return nil, err
	} else if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/bff/user after login: status %d: %.300s", resp.StatusCode, body)
	}
	u, _ := url.Parse(base + "/")
	for _, c := range jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c, nil
		}
	}
	return nil, errors.New("no session cookie after login")
}

func do(c *http.Client, req *http.Request) (*http.Response, string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b), err
}

func redirect(resp *http.Response, what string) (*url.URL, error) {
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("%s: status %d, want a redirect", what, resp.StatusCode)
	}
	return resp.Location()
}
