package config

import "net/url"

// mediate checks apis[i].mediate (p is "apis[i]"), the token-mediating
// mode: the browser gets the user's access token for the route, so it
// must be bound to the browser's own key (oidc.dpop), be the user's token
// (token user: the refresh token that mediates it is the user's), and
// travel to the upstream over https.
func (v *validator) mediate(p string, a API) {
	if !a.Mediate {
		return
	}
	key := p + ".mediate"
	if !v.c.OIDC.DPoP {
		v.errorf(key, "needs oidc.dpop: true: a token handed to the browser must be bound to the browser's own key; set oidc.dpop: true, or remove mediate")
	}
	if a.Token != TokenUser {
		v.errorf(key, "needs token user: the browser gets the signed-in user's own token (resource, audience and scopes narrow it), not a %s token; set token: user, or remove mediate", a.Token)
	}
	if u, err := url.Parse(a.Upstream); err == nil && u.Scheme == "http" && !isLocalhost(u.Hostname()) {
		v.errorf(p+".upstream", "must use https with mediate, since the browser sends the token to it directly: plain http is allowed only for localhost")
	}
	if v.c.Frontend.CSP != "" {
		v.warnf(key, "frontend.csp replaces the default policy, which would let the SPA reach this upstream: add its origin to connect-src")
	}
}
