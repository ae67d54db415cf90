package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	const (
		publicURL = "public_url: https://app.example.com\n"
		issuer    = "  issuer: https://idp.example.com\n"
		clientID  = "  client_id: web\n"
		secret    = "  client_secret: not-a-real-secret\n"
		keys      = "  keys: [0123456789abcdef0123456789abcdef]\n"
		api       = "apis:\n  - path: /api/\n    upstream: http://api.internal/\n" // lines 9-11
	)
	tests := []struct {
		name string
		data string
		want []Problem
	}{
		// public_url
		{"public_url missing", edit("", publicURL, ""), []Problem{
			{Key: "public_url", Msg: "required: the origin the browser sees"}}},
		{"public_url plain http", edit("", publicURL, "public_url: http://app.example.com\n"), []Problem{
			{Key: "session.cookie_name", Msg: "a __Host- or __Secure- cookie needs Secure"},
			{Line: 1, Key: "public_url", Msg: "use https, plain http is allowed only for localhost"}}},
		{"public_url http localhost", edit("", publicURL, "public_url: http://localhost:8080\n"), nil},
		{"public_url http 127.0.0.1", edit("", publicURL, "public_url: http://127.0.0.1:8080/\n"), nil},
		{"public_url http ::1", edit("", publicURL, "public_url: http://[::1]:8080\n"), nil},
		{"public_url path", edit("", publicURL, "public_url: https://app.example.com/app\n"), []Problem{
			{Line: 1, Key: "public_url", Msg: "must be an origin without path or query"}}},
		{"public_url query", edit("", publicURL, "public_url: https://app.example.com/?a=b\n"), []Problem{
			{Line: 1, Key: "public_url", Msg: "must be an origin without path or query"}}},
		{"public_url fragment", edit("", publicURL, "public_url: https://app.example.com/#x\n"), []Problem{
			{Line: 1, Key: "public_url", Msg: "must not have a #fragment"}}},
		{"public_url relative", edit("", publicURL, "public_url: app.example.com\n"), []Problem{
			{Line: 1, Key: "public_url", Msg: `"app.example.com" is not an absolute http(s) URL`}}},
		{"public_url user info", edit("", publicURL, "public_url: https://u:p@app.example.com\n"), []Problem{
			{Line: 1, Key: "public_url", Msg: "must not hold a user name or password"}}},

		// oidc
		{"issuer missing", edit("", issuer, ""), []Problem{
			{Key: "oidc.issuer", Msg: "required"}}},
		{"issuer plain http", edit("", issuer, "  issuer: http://idp.example.com\n"), []Problem{
			{Line: 3, Key: "oidc.issuer", Msg: "use https, plain http is allowed only for localhost"}}},
		{"issuer http localhost", edit("", issuer, "  issuer: http://localhost:9000/realms/x\n"), nil},
		{"issuer query", edit("", issuer, "  issuer: https://idp.example.com/?x=1\n"), []Problem{
			{Line: 3, Key: "oidc.issuer", Msg: "must not have a query"}}},
		{"client_id missing", edit("", clientID, ""), []Problem{
			{Key: "oidc.client_id", Msg: "required"}}},
		{"no secret", edit("", secret, ""), []Problem{
			{Key: "oidc.client_secret", Msg: "required: set client_secret"}}},
		{"client_auth unknown", edit("", secret, secret+"  client_auth: client_secret_jwt\n"), []Problem{
			{Line: 6, Key: "oidc.client_auth", Msg: "is not a client authentication method: use client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth or self_signed_tls_client_auth"}}},
		{"client_secret_post", edit("", secret, secret+"  client_auth: client_secret_post\n"), nil},
		{"private_key_jwt without key", edit("", secret, "  client_auth: private_key_jwt\n"), []Problem{
			{Key: "oidc.private_key_file", Msg: "required with client_auth private_key_jwt"}}},
		{"private_key_jwt with key", edit("", secret, "  client_auth: private_key_jwt\n  private_key_file: "+keyFile+"\n"), nil},
		{"private_key_jwt missing key file", edit("", secret, "  client_auth: private_key_jwt\n  private_key_file: "+filepath.Join(dir, "nope")+"\n"), []Problem{
			{Line: 6, Key: "oidc.private_key_file", Msg: "cannot read the file: it does not exist"}}},
		{"private_key_jwt with secret", edit("", clientID, clientID+"  client_auth: private_key_jwt\n  private_key_file: "+keyFile+"\n"), []Problem{
			{Line: 7, Key: "oidc.client_secret", Msg: "is not used with client_auth private_key_jwt", Warning: true}}},
		{"private key without private_key_jwt", edit("", secret, secret+"  private_key_file: "+keyFile+"\n"), []Problem{
			{Line: 6, Key: "oidc.private_key_file", Msg: "is used only with client_auth private_key_jwt", Warning: true}}},
		{"scopes without openid", edit("", secret, secret+"  scopes: [profile, email]\n"), []Problem{
			{Line: 6, Key: "oidc.scopes", Msg: "must include openid"}}},
		{"scope with a space", edit("", secret, secret+"  scopes: [openid, 'a b']\n"), []Problem{
			{Line: 6, Key: "oidc.scopes[1]", Msg: "must be one word"}}},
		{"callback_path relative", edit("", secret, secret+"  callback_path: bff/callback\n"), []Problem{
			{Line: 6, Key: "oidc.callback_path", Msg: "must start with /"}}},
		{"callback_path protocol-relative", edit("", secret, secret+"  callback_path: //evil.example.com/cb\n"), []Problem{
			{Line: 6, Key: "oidc.callback_path", Msg: "must not start with // or /\\"}}},
		{"callback_path query", edit("", secret, secret+"  callback_path: /cb?x=1\n"), []Problem{
			{Line: 6, Key: "oidc.callback_path", Msg: "must be a plain path"}}},
		{"callback_path login", edit("", secret, secret+"  callback_path: /bff/login\n"), []Problem{
			{Line: 6, Key: "oidc.callback_path", Msg: "collides with the gateway's own endpoint /bff/login"}}},
		{"callback_path under user", edit("", secret, secret+"  callback_path: /bff/user/callback\n"), []Problem{
			{Line: 6, Key: "oidc.callback_path", Msg: "collides with the gateway's own endpoint /bff/user"}}},
		{"callback_path silent", edit("", secret, secret+"  callback_path: /bff/silent-login-callback\n"), []Problem{
			{Line: 6, Key: "oidc.callback_path", Msg: "/bff/silent-login-callback"}}},
		{"callback_path elsewhere", edit("", secret, secret+"  callback_path: /signin-oidc\n"), nil},
		{"post_logout_path", edit("", secret, secret+"  post_logout_path: https://evil.example.com/\n"), []Problem{
			{Line: 6, Key: "oidc.post_logout_path", Msg: "must start with /"}}},
		{"auth_params reserved", edit("", secret, secret+"  auth_params: {audience: api, redirect_uri: x, nonce: y}\n"), []Problem{
			{Line: 6, Key: "oidc.auth_params.nonce", Msg: "is set by the gateway itself"},
			{Line: 6, Key: "oidc.auth_params.redirect_uri", Msg: "is set by the gateway itself"}}},

		// session
		{"keys missing", edit("", keys, ""), []Problem{
			{Key: "session.keys", Msg: "at least one key is required: generate one with: openssl rand -base64 32"}}},
		{"keys empty", edit("", keys, "  keys: []\n"), []Problem{
			{Line: 8, Key: "session.keys", Msg: "at least one key is required"}}},
		{"key short", edit("", keys, "  keys: [short-key-value]\n"), []Problem{
			{Line: 8, Key: "session.keys[0]", Msg: "must be at least 32 bytes; generate one with: openssl rand -base64 32"}}},
		{"second key short", edit("", keys, "  keys:\n    - 0123456789abcdef0123456789abcdef\n    - base64:AAAA\n"), []Problem{
			{Line: 10, Key: "session.keys[1]", Msg: "must be at least 32 bytes"}}},
		{"key bad base64", edit("", keys, "  keys: ['base64:*not*']\n"), []Problem{
			{Line: 8, Key: "session.keys[0]", Msg: "is not valid base64 after the base64: prefix"}}},
		{"key base64 32 bytes", edit("", keys, "  keys: ['base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=']\n"), nil},
		{"key repeated", edit("", keys, "  keys: [0123456789abcdef0123456789abcdef, 0123456789abcdef0123456789abcdef]\n"), []Problem{
			{Line: 8, Key: "session.keys[1]", Msg: "repeats session.keys[0]", Warning: true}}},
		{"store unknown", edit("", "  store: memory\n", "  store: mysql://db\n"), []Problem{
			{Line: 7, Key: "session.store", Msg: "must be memory, cookie, file:PATH, or a redis://, rediss://, redis-sentinel:// or valkey:// URL"}}},
		{"store empty file", edit("", "  store: memory\n", "  store: 'file:'\n"), []Problem{
			{Line: 7, Key: "session.store", Msg: "must be memory"}}},
		{"store redis", edit("", "  store: memory\n", "  store: rediss://user:pw@redis:6380/0\n"), nil},
		{"store cookie", edit("", "  store: memory\n", "  store: cookie\n"), nil},
		{"store file", edit("", "  store: memory\n", "  store: file:/var/lib/cloakroom/s.db\n"), nil},
		{"cookie_name invalid", edit("  cookie_name: my cookie\n"), []Problem{
			{Line: 9, Key: "session.cookie_name", Msg: "must be a cookie name"}}},
		{"__Host- cookie on http", edit("", publicURL, "public_url: http://app.example.com\n"), []Problem{
			{Key: "session.cookie_name", Msg: "a __Host- or __Secure- cookie needs Secure"},
			{Line: 1, Key: "public_url", Msg: "use https"}}},
		{"plain cookie on localhost", edit("  cookie_name: cloakroom\n", publicURL, "public_url: http://localhost:8080\n"), nil},
		{"same_site none", edit("  same_site: none\n"), []Problem{
			{Line: 9, Key: "session.same_site", Msg: "use strict or lax"}}},
		{"same_site other", edit("  same_site: Strict\n"), []Problem{
			{Line: 9, Key: "session.same_site", Msg: `"Strict" is not a SameSite mode: use strict or lax`}}},
		{"same_site lax", edit("  same_site: lax\n"), nil},
		{"idle_timeout zero", edit("  idle_timeout: 0s\n"), []Problem{
			{Line: 9, Key: "session.idle_timeout", Msg: "must be positive"}}},
		{"absolute below idle", edit("  idle_timeout: 2h\n  absolute_timeout: 1h\n"), []Problem{
			{Line: 10, Key: "session.absolute_timeout", Msg: "must be at least idle_timeout (2h0m0s)"}}},
		{"refresh_before negative", edit("  refresh_before: -1s\n"), []Problem{
			{Line: 9, Key: "session.refresh_before", Msg: "must not be negative"}}},

		// csrf
		{"csrf header invalid", edit("csrf: {header: 'X CSRF'}\n"), []Problem{
			{Line: 9, Key: "csrf.header", Msg: "must be a header name"}}},
		{"csrf header empty", edit("csrf: {header: ''}\n"), []Problem{
			{Line: 9, Key: "csrf.header", Msg: "must be a header name"}}},
		{"csrf header safelisted", edit("csrf: {header: Content-Type}\n"), []Problem{
			{Line: 9, Key: "csrf.header", Msg: "is sent cross-site without a CORS preflight"}}},
		{"csrf header forbidden", edit("csrf: {header: Cookie}\n"), []Problem{
			{Line: 9, Key: "csrf.header", Msg: "cannot be set by the SPA"}}},
		{"csrf value empty", edit("csrf:\n  value: ''\n"), []Problem{
			{Line: 10, Key: "csrf.value", Msg: "required"}}},
		{"csrf value line break", edit("csrf:\n  value: \"a\\nb\"\n"), []Problem{
			{Line: 10, Key: "csrf.value", Msg: "must not hold control characters"}}},

		// cors
		{"cors wildcard", edit("cors: {allowed_origins: ['*']}\n"), []Problem{
			{Line: 9, Key: "cors.allowed_origins[0]", Msg: "wildcard CORS with credentials is refused: list origins"}}},
		{"cors wildcard subdomain", edit("cors: {allowed_origins: ['https://*.example.com']}\n"), []Problem{
			{Line: 9, Key: "cors.allowed_origins[0]", Msg: "wildcard CORS with credentials is refused"}}},
		{"cors null", edit("cors:\n  allowed_origins:\n    - https://admin.example.com\n    - 'null'\n"), []Problem{
			{Line: 12, Key: "cors.allowed_origins[1]", Msg: "the null origin"}}},
		{"cors path", edit("cors: {allowed_origins: [https://admin.example.com/]}\n"), []Problem{
			{Line: 9, Key: "cors.allowed_origins[0]", Msg: "is not an origin: write scheme://host[:port] without a path"}}},
		{"cors not a URL", edit("cors: {allowed_origins: [admin.example.com]}\n"), []Problem{
			{Line: 9, Key: "cors.allowed_origins[0]", Msg: "is not an origin"}}},
		{"cors uppercase", edit("cors: {allowed_origins: [https://Admin.example.com]}\n"), []Problem{
			{Line: 9, Key: "cors.allowed_origins[0]", Msg: "must be lowercase"}}},
		{"cors port", edit("cors: {allowed_origins: ['http://localhost:5173']}\n"), nil},

		// frontend
		{"frontend both", edit("frontend: {dir: " + dir + ", dev_server: http://localhost:5173}\n"), []Problem{
			{Line: 9, Key: "frontend.dev_server", Msg: "set either frontend.dir or frontend.dev_server, not both"}}},
		{"frontend dir missing", edit("frontend:\n  dir: ./no-such-dir\n"), []Problem{
			{Line: 10, Key: "frontend.dir", Msg: `"./no-such-dir": it does not exist`}}},
		{"frontend dir is a file", edit("frontend:\n  dir: " + notDir + "\n"), []Problem{
			{Line: 10, Key: "frontend.dir", Msg: "is not a directory"}}},
		{"frontend dir", edit("frontend:\n  dir: " + dir + "\n"), nil},
		{"frontend dev_server", edit("frontend:\n  dev_server: localhost:5173\n"), []Problem{
			{Line: 10, Key: "frontend.dev_server", Msg: "is not an absolute http(s) URL"}}},

		// apis
		{"api valid", edit(api), nil},
		{"api path missing", edit("apis:\n  - upstream: http://api.internal/\n"), []Problem{
			{Key: "apis[0].path", Msg: "required"}}},
		{"api path no slash", edit(strings.Replace(api, "  - path: /api/\n", "  - path: /api\n", 1)), []Problem{
			{Line: 10, Key: "apis[0].path", Msg: "must start and end with /"}}},
		{"api path under bff", edit(strings.Replace(api, "  - path: /api/\n", "  - path: /bff/api/\n", 1)), []Problem{
			{Line: 10, Key: "apis[0].path", Msg: "must not be under /bff/"}}},
		{"api path dot segment", edit(strings.Replace(api, "  - path: /api/\n", "  - path: /api/../x/\n", 1)), []Problem{
			{Line: 10, Key: "apis[0].path", Msg: "must be a clean path"}}},
		{"api path escape", edit(strings.Replace(api, "  - path: /api/\n", "  - path: /api%2f/\n", 1)), []Problem{
			{Line: 10, Key: "apis[0].path", Msg: "must be a plain path"}}},
		{"api path repeated", edit(api + "  - {path: /api/, upstream: http://other.internal/}\n"), []Problem{
			{Line: 12, Key: "apis[1].path", Msg: "repeats apis[0].path"}}},
		{"api upstream missing", edit("apis:\n  - path: /api/\n"), []Problem{
			{Key: "apis[0].upstream", Msg: "required"}}},
		{"api upstream relative", edit(strings.Replace(api, "http://api.internal/", "api.internal", 1)), []Problem{
			{Line: 11, Key: "apis[0].upstream", Msg: `"api.internal" is not an absolute http(s) URL`}}},
		{"api upstream scheme", edit(strings.Replace(api, "http://api.internal/", "ws://api.internal/", 1)), []Problem{
			{Line: 11, Key: "apis[0].upstream", Msg: "is not an absolute http(s) URL"}}},
		{"api token unknown", edit(api + "    token: usr\n"), []Problem{
			{Line: 12, Key: "apis[0].token", Msg: `"usr" is not a token mode: use user, client, user_or_client, user_or_none, none, exchange`}}},
		{"api scopes on user token", edit(api + "    scopes: [a]\n    audience: b\n    resource: https://r.example.com\n"), []Problem{
			{Line: 12, Key: "apis[0].scopes", Msg: "is used only with token client", Warning: true},
			{Line: 13, Key: "apis[0].audience", Msg: "is used only with token client", Warning: true},
			{Line: 14, Key: "apis[0].resource", Msg: "is used only with token client", Warning: true}}},
		{"api scopes on client token", edit(api + "    token: client\n    scopes: [a]\n"), nil},
		{"api exchange without audience", edit(api + "    token: exchange\n"), []Problem{
			{Line: 12, Key: "apis[0].token", Msg: "exchange needs apis[0].audience or apis[0].resource"}}},
		{"api exchange with resource", edit(api + "    token: exchange\n    resource: https://r.example.com/\n"), nil},
		{"api resource relative", edit(api + "    token: client\n    resource: orders\n"), []Problem{
			{Line: 13, Key: "apis[0].resource", Msg: "must be an absolute URI"}}},
		{"api timeout negative", edit(api + "    timeout: -5s\n"), []Problem{
			{Line: 12, Key: "apis[0].timeout", Msg: "must not be negative"}}},
		{"api timeout zero", edit(api + "    timeout: 0\n"), nil},
		{"api require empty claim", edit(api + "    require: {claims: {role: []}}\n"), []Problem{
			{Line: 12, Key: "apis[0].require.claims.role", Msg: "lists no accepted value"}}},

		// composites
		{"composite valid", edit(api + "composites:\n  - path: /bff/dash\n    parts: {me: {api: /api/, path: me}}\n    profiles: {mobile: {allow: [me.name]}}\n"), nil},
		{"composite path relative", edit(api + "composites:\n  - path: dash\n    parts: {me: {api: /api/}}\n"), []Problem{
			{Line: 13, Key: "composites[0].path", Msg: "must start with /"}}},
		{"composite path reserved", edit(api + "composites:\n  - path: /bff/user\n    parts: {me: {api: /api/}}\n"), []Problem{
			{Line: 13, Key: "composites[0].path", Msg: "collides with the gateway's own endpoint /bff/user"}}},
		{"composite path callback", edit(api + "composites:\n  - path: /bff/callback\n    parts: {me: {api: /api/}}\n"), []Problem{
			{Line: 13, Key: "composites[0].path", Msg: "is oidc.callback_path"}}},
		{"composite path repeated", edit(api + "composites:\n  - {path: /bff/d, parts: {me: {api: /api/}}}\n  - {path: /bff/d, parts: {me: {api: /api/}}}\n"), []Problem{
			{Line: 14, Key: "composites[1].path", Msg: "repeats composites[0].path"}}},
		{"composite without parts", edit(api + "composites:\n  - path: /bff/d\n"), []Problem{
			{Key: "composites[0].parts", Msg: "at least one part is required"}}},
		{"composite empty parts", edit(api + "composites:\n  - path: /bff/d\n    parts: {}\n"), []Problem{
			{Line: 14, Key: "composites[0].parts", Msg: "at least one part is required"}}},
		{"part api missing", edit(api + "composites:\n  - path: /bff/d\n    parts:\n      me: {path: me}\n"), []Problem{
			{Key: "composites[0].parts.me.api", Msg: "required"}}},
		{"part api unknown", edit(api + "composites:\n  - path: /bff/d\n    parts:\n      me: {api: /users/}\n"), []Problem{
			{Line: 15, Key: "composites[0].parts.me.api", Msg: `"/users/" names no apis[].path`}}},
		{"part api without slash", edit(api + "composites:\n  - path: /bff/d\n    parts:\n      me: {api: /api}\n"), []Problem{
			{Line: 15, Key: "composites[0].parts.me.api", Msg: `names no apis[].path: did you mean "/api/"?`}}},
		{"part path escapes", edit(api + "composites:\n  - path: /bff/d\n    parts:\n      me: {api: /api/, path: ../admin}\n"), []Problem{
			{Line: 15, Key: "composites[0].parts.me.path", Msg: "must stay under the API's upstream"}}},
		{"part path absolute URL", edit(api + "composites:\n  - path: /bff/d\n    parts:\n      me: {api: /api/, path: 'http://evil/'}\n"), []Problem{
			{Line: 15, Key: "composites[0].parts.me.path", Msg: "must stay under the API's upstream"}}},
		{"part timeout negative", edit(api + "composites:\n  - path: /bff/d\n    parts:\n      me: {api: /api/, timeout: -1s}\n"), []Problem{
			{Line: 15, Key: "composites[0].parts.me.timeout", Msg: "must not be negative"}}},
		{"part named _meta", edit(api + "composites:\n  - path: /bff/d\n    parts:\n      _meta: {api: /api/}\n"), []Problem{
			{Line: 15, Key: "composites[0].parts._meta", Msg: "rename the part"}}},
		{"profile empty path", edit(api + "composites:\n  - path: /bff/d\n    parts: {me: {api: /api/}}\n    profiles:\n      mobile:\n        deny: ['', me..x]\n"), []Problem{
			{Line: 17, Key: "composites[0].profiles.mobile.deny[0]", Msg: "must be a dot path without empty segments"},
			{Line: 17, Key: "composites[0].profiles.mobile.deny[1]", Msg: "must be a dot path without empty segments"}}},
		{"profile unknown part", edit(api + "composites:\n  - path: /bff/d\n    parts: {me: {api: /api/}}\n    profiles: {mobile: {allow: [you.name, _meta]}}\n"), []Problem{
			{Line: 15, Key: "composites[0].profiles.mobile.allow[0]", Msg: `starts with "you"`, Warning: true}}},

		// trusted_proxies, listen, admin_listen
		{"trusted_proxies valid", edit("trusted_proxies: [10.0.0.0/8, 192.0.2.7, '2001:db8::/32', '::1']\n"), nil},
		{"trusted_proxies invalid", edit("trusted_proxies:\n  - 10.0.0.0/8\n  - proxy.internal\n  - 10.0.0.0/40\n"), []Problem{
			{Line: 11, Key: "trusted_proxies[1]", Msg: `"proxy.internal" is neither a CIDR nor an IP address`},
			{Line: 12, Key: "trusted_proxies[2]", Msg: "is neither a CIDR nor an IP address"}}},
		{"trusted_proxies everyone", edit("trusted_proxies: [0.0.0.0/0]\n"), []Problem{
			{Line: 9, Key: "trusted_proxies[0]", Msg: "trusts X-Forwarded-* headers from every address", Warning: true}}},
		{"listen not host:port", edit("listen: '8080'\n"), []Problem{
			{Line: 9, Key: "listen", Msg: `"8080" is not host:port`}}},
		{"listen empty", edit("listen: ''\n"), []Problem{
			{Line: 9, Key: "listen", Msg: "required"}}},
		{"admin_listen bad port", edit("admin_listen: 127.0.0.1:http\n"), []Problem{
			{Line: 9, Key: "admin_listen", Msg: "has no port number"}}},
		{"admin_listen same as listen", edit("admin_listen: ':8080'\n"), []Problem{
			{Line: 9, Key: "admin_listen", Msg: "is the same address as listen"}}},
		{"admin_listen public", edit("admin_listen: 0.0.0.0:9090\n"), []Problem{
			{Line: 9, Key: "admin_listen", Msg: "bind it to 127.0.0.1", Warning: true}}},
		{"admin_listen loopback", edit("admin_listen: '[::1]:9090'\n"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, sortedByKey(problemsOf(t, tt.data, nil)), sortedByKey(tt.want))
		})
	}
}

func TestValidateDefault(t *testing.T) {
	c := Default()
	c.PublicURL = "http://localhost:8080"
	c.OIDC.Issuer = "http://127.0.0.1:9000"
	c.OIDC.ClientID = "demo"
	c.OIDC.ClientSecret = "demo-secret"
	c.Session.Keys = []string{"0123456789abcdef0123456789abcdef"}
	c.APIs = []API{{Path: "/api/demo/", Upstream: "http://127.0.0.1:9001/", Token: TokenUser}}
	if p := c.Validate(); p != nil {
		t.Errorf("Validate() = %v, want nil", p)
	}
	if w := c.Warnings(); w != nil {
		t.Errorf("Warnings() = %v for a config made in code", w)
	}
	c.Session.Keys = nil
	want := []Problem{{Key: "session.keys", Msg: "at least one key is required: generate one with: openssl rand -base64 32"}}
	checkProblems(t, c.Validate(), want)
}
