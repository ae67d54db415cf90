package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
)

// notServed is the message of the one problem a file with frontends: has
// while serve does not build its frontends from Apps (notServedYet). The
// helpers below drop it, so that these tests keep their meaning once it
// is gone.
const notServed = "not served by this version yet"

func withoutNotServed(list []Problem) []Problem {
	return slices.DeleteFunc(slices.Clone(list), func(p Problem) bool {
		return p.Key == "frontends" && p.Msg == notServed
	})
}

// frontendProblems parses data and returns its problems, warnings
// included, but the one of notServed.
func frontendProblems(t *testing.T, data string) []Problem {
	t.Helper()
	_, list := parse("cloakroom.yaml", []byte(data), nil)
	return withoutNotServed(list)
}

// parseFrontends parses data as Parse would once frontends: is served.
func parseFrontends(t *testing.T, data string, lookup func(string) (string, bool)) *Config {
	t.Helper()
	cfg, list := parse("cloakroom.yaml", []byte(data), lookup)
	list = withoutNotServed(list)
	for _, p := range list {
		if !p.Warning {
			t.Fatalf("parse: %v", (&Problems{File: "cloakroom.yaml", List: list}).Error())
		}
	}
	if cfg == nil {
		t.Fatal("parse returned no config")
	}
	cfg.meta.warnings = list
	return cfg
}

// head is the top level of the files below (lines 1-7); their entries
// start at line 8.
const head = `oidc:
  issuer: https://idp.example.com
  client_secret: not-a-real-secret
session:
  store: memory
  keys: [0123456789abcdef0123456789abcdef]
frontends:
`

const (
	shopEntry  = "  - {name: shop, public_url: https://shop.example.com, oidc: {client_id: shop}}\n"
	adminEntry = "  - {name: admin, public_url: https://shop.example.com, path: /admin/, oidc: {client_id: admin}}\n"
)

func TestValidateFrontends(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []Problem
	}{
		{"two on one origin", head + shopEntry + adminEntry, nil},
		{"two hosts", head + shopEntry + "  - {name: admin, public_url: https://admin.example.com, oidc: {client_id: admin}}\n", nil},
		{"one port each", head + shopEntry + "  - {name: admin, public_url: 'https://shop.example.com:8443', oidc: {client_id: admin}}\n", nil},
		{"localhost names", head + "  - {name: shop, public_url: 'http://shop.localhost:8080', oidc: {client_id: shop, issuer: 'http://idp.localhost:9000'}}\n", nil},

		// entries
		{"empty list", head + "  []\n", []Problem{
			{Line: 7, Key: "frontends", Msg: "lists no frontend"}}},
		{"name missing", head + "  - {public_url: https://shop.example.com, oidc: {client_id: shop}}\n", []Problem{
			{Line: 8, Key: "frontends[0].name", Msg: "required: a name of lowercase letters, digits and -"}}},
		{"name bad", head + strings.Replace(shopEntry, "name: shop", "name: Shop", 1), []Problem{
			{Line: 8, Key: "frontends[0].name", Msg: `"Shop" is not a name of lowercase letters, digits and -`}}},
		{"name repeated", head + shopEntry + strings.Replace(shopEntry, "shop.example.com", "other.example.com", 1), []Problem{
			{Line: 9, Key: "frontends[1].name", Msg: "repeats frontends[0].name"}}},
		{"unknown key", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc: {client_id: shop}\n    patth: /x/\n", []Problem{
			{Line: 11, Key: "frontends[0].patth", Msg: `unknown key; did you mean "path"?`}}},
		{"path without slash", head + shopEntry + strings.Replace(adminEntry, "/admin/", "/admin", 1), []Problem{
			{Line: 9, Key: "frontends[1].path", Msg: "must start and end with /"}}},
		{"path under bff", head + shopEntry + strings.Replace(adminEntry, "/admin/", "/bff/admin/", 1), []Problem{
			{Line: 9, Key: "frontends[1].path", Msg: "must not be under /bff/"}}},
		{"path with dots", head + shopEntry + strings.Replace(adminEntry, "/admin/", "/a/../admin/", 1), []Problem{
			{Line: 9, Key: "frontends[1].path", Msg: "must be a clean path"}}},

		// top level
		{"public_url at the top", head + shopEntry + "public_url: https://app.example.com\n", []Problem{
			{Line: 9, Key: "public_url", Msg: "with frontends, each frontend has its own public_url"}}},
		{"top-level only keys in an entry", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc: {client_id: shop}\n" +
			"    listen: ':9090'\n    admin_listen: 127.0.0.1:9091\n    admin_token: x\n    trusted_proxies: [10.0.0.0/8]\n    tls: {cert_file: x}\n" +
			"    session: {store: memory, keys: [0123456789abcdef0123456789abcdef]}\n", []Problem{
			{Line: 11, Key: "frontends[0].listen", Msg: "is top-level only: it applies to the whole gateway"},
			{Line: 12, Key: "frontends[0].admin_listen", Msg: "is top-level only"},
			{Line: 13, Key: "frontends[0].admin_token", Msg: "is top-level only"},
			{Line: 14, Key: "frontends[0].trusted_proxies", Msg: "is top-level only"},
			{Line: 15, Key: "frontends[0].tls", Msg: "is top-level only"},
			{Line: 16, Key: "frontends[0].session.keys", Msg: "is top-level only: every frontend shares the session store and its keys"},
			{Line: 16, Key: "frontends[0].session.store", Msg: "is top-level only: every frontend shares the session store and its keys"}}},
		{"client_id per frontend", head + "  - {name: shop, public_url: https://shop.example.com}\n", []Problem{
			{Line: 8, Key: "frontends[0].oidc.client_id", Msg: "required: the client id"}}},
		{"client_id inherited", strings.Replace(head, "  client_secret", "  client_id: web\n  client_secret", 1) +
			"  - {name: shop, public_url: https://shop.example.com}\n", nil},
		{"credential per frontend", strings.Replace(head, "  client_secret: not-a-real-secret\n", "", 1) + shopEntry +
			"  - name: admin\n    public_url: https://admin.example.com\n    oidc:\n      client_id: admin\n      client_secret: x\n", []Problem{
			{Line: 7, Key: "frontends[0].oidc.client_secret", Msg: "required: set client_secret"}}},
		{"issuer per frontend", strings.Replace(head, "  issuer: https://idp.example.com\n", "", 1) + shopEntry, []Problem{
			{Line: 7, Key: "frontends[0].oidc.issuer", Msg: "required"}}},
		{"entry issuer plain http", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc:\n      client_id: shop\n      issuer: http://idp.example.com\n", []Problem{
			{Line: 12, Key: "frontends[0].oidc.issuer", Msg: "use https"}}},
		{"inherited problem once", strings.Replace(head, "  client_secret", "  scopes: [profile]\n  client_secret", 1) + shopEntry + adminEntry, []Problem{
			{Line: 3, Key: "oidc.scopes", Msg: "must include openid"}}},
		{"public_url missing in an entry", head + "  - {name: shop, oidc: {client_id: shop}}\n", []Problem{
			{Line: 8, Key: "frontends[0].public_url", Msg: "required: the origin the browser sees"}}},
		{"public_url plain http", head + strings.Replace(shopEntry, "https://shop.example.com", "http://shop.example.com", 1), []Problem{
			{Line: 8, Key: "frontends[0].public_url", Msg: "use https"},
			{Line: 8, Key: "frontends[0].session.cookie_name", Msg: "a __Host- or __Secure- cookie needs Secure"}}},
		{"public_url with a path", head + strings.Replace(shopEntry, "https://shop.example.com", "https://shop.example.com/admin/", 1), []Problem{
			{Line: 8, Key: "frontends[0].public_url", Msg: "must be an origin without path or query"}}},

		// one host
		{"same path on one host", head + shopEntry + strings.Replace(shopEntry, "name: shop", "name: admin", 1), []Problem{
			{Line: 9, Key: "frontends[1].path", Msg: `"/" is also the path of frontends[0] (shop) on host shop.example.com:443`}}},
		{"same path, port spelt out", head + shopEntry + strings.Replace(adminEntry, "https://shop.example.com, path: /admin/", "'https://SHOP.example.com:443'", 1), []Problem{
			{Line: 9, Key: "frontends[1].path", Msg: "is also the path of frontends[0] (shop)"}}},
		{"cookie name repeated", head + "  - {name: shop, public_url: https://shop.example.com, oidc: {client_id: shop}, session: {cookie_name: __Secure-c}}\n" +
			"  - name: admin\n    public_url: https://shop.example.com\n    path: /admin/\n    oidc: {client_id: admin}\n    session:\n      cookie_name: __Secure-c\n", []Problem{
			{Line: 14, Key: "frontends[1].session.cookie_name", Msg: `"__Secure-c", this frontend's session cookie name, is also that of frontends[0] (shop) on host shop.example.com, where the browser sends both`}}},
		{"cookie name repeated across ports", head + "  - {name: shop, public_url: 'https://shop.example.com:8443', oidc: {client_id: shop}, session: {cookie_name: c}}\n" +
			"  - {name: admin, public_url: 'https://shop.example.com:9443', oidc: {client_id: admin}, session: {cookie_name: c}}\n", []Problem{
			{Line: 9, Key: "frontends[1].session.cookie_name", Msg: "is also that of frontends[0] (shop) on host shop.example.com"}}},
		{"cookie name inherited twice", strings.Replace(head, "  store: memory\n", "  store: memory\n  cookie_name: __Secure-c\n", 1) + shopEntry + adminEntry, []Problem{
			{Line: 10, Key: "frontends[1].session.cookie_name", Msg: "inherited from the top level, is also that of frontends[0] (shop)"}}},
		{"cookie name inherited on two hosts", strings.Replace(head, "  store: memory\n", "  store: memory\n  cookie_name: __Host-c\n", 1) + shopEntry +
			"  - {name: admin, public_url: https://admin.example.com, oidc: {client_id: admin}}\n", nil},
		{"__Host- cookie under a path", head + shopEntry + "  - {name: admin, public_url: https://shop.example.com, path: /admin/, oidc: {client_id: admin}, session: {cookie_name: __Host-admin}}\n", []Problem{
			{Line: 9, Key: "frontends[1].session.cookie_name", Msg: `is a __Host- name, which must have Path=/, and this frontend's path is "/admin/": use a __Secure- name, e.g. __Secure-Http-cloakroom-admin`}}},
		{"__Host- cookie inherited under a path", strings.Replace(head, "  store: memory\n", "  store: memory\n  cookie_name: __Host-c\n", 1) +
			"  - {name: admin, public_url: https://shop.example.com, path: /admin/, oidc: {client_id: admin}}\n", []Problem{
			{Line: 9, Key: "frontends[0].session.cookie_name", Msg: `inherits session.cookie_name "__Host-c", a __Host- name, which must have Path=/`}}},

		// routes
		{"route under another frontend's path", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc: {client_id: shop}\n    apis:\n      - {path: /admin/api/, upstream: http://api.internal/}\n" + adminEntry, []Problem{
			{Line: 12, Key: "frontends[0].apis[0].path", Msg: "is served by frontends[0] (shop) at /admin/api/, under the path /admin/ of frontends[1] (admin) on the same host"}}},
		{"route under a path on another host", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc: {client_id: shop}\n    apis:\n      - {path: /admin/api/, upstream: http://api.internal/}\n" +
			strings.Replace(adminEntry, "shop.example.com", "admin.example.com", 1), nil},
		{"shared route under another frontend's path", head + shopEntry + adminEntry + "apis:\n  - path: /admin/x/\n    upstream: http://api.internal/\n", []Problem{
			{Line: 11, Key: "apis[0].path", Msg: "is served by frontends[0] (shop) at /admin/x/, under the path /admin/ of frontends[1] (admin)"}}},
		{"composite under another frontend's path", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc: {client_id: shop}\n" +
			"    apis: [{path: /api/, upstream: http://api.internal/}]\n    composites:\n      - {path: /admin/dash, parts: {me: {api: /api/}}}\n" + adminEntry, []Problem{
			{Line: 13, Key: "frontends[0].composites[0].path", Msg: "is served by frontends[0] (shop) at /admin/dash, under the path /admin/ of frontends[1] (admin)"}}},
		{"callback under another frontend's path", head + "  - {name: shop, public_url: https://shop.example.com, oidc: {client_id: shop, callback_path: /admin/cb}}\n" + adminEntry, []Problem{
			{Line: 8, Key: "frontends[0].oidc.callback_path", Msg: "is served by frontends[0] (shop) at /admin/cb, under the path /admin/ of frontends[1] (admin)"}}},
		{"own route repeats a shared one", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc: {client_id: shop}\n    apis: [{path: /api/, upstream: http://b.internal/}]\n" +
			"apis: [{path: /api/, upstream: http://a.internal/}]\n", []Problem{
			{Line: 11, Key: "frontends[0].apis[0].path", Msg: "repeats apis[0].path"}}},
		{"own route invalid", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc: {client_id: shop}\n    apis: [{path: /api/, upstream: api.internal, token: exchange}]\n", []Problem{
			{Line: 11, Key: "frontends[0].apis[0].token", Msg: "exchange needs frontends[0].apis[0].audience or frontends[0].apis[0].resource"},
			{Line: 11, Key: "frontends[0].apis[0].upstream", Msg: `"api.internal" is not an absolute http(s) URL`}}},
		{"shared composite names an own route", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc: {client_id: shop}\n    apis: [{path: /api/shop/, upstream: http://shop.internal/}]\n" +
			adminEntry + "composites:\n  - path: /bff/dash\n    parts: {me: {api: /api/shop/}}\n", []Problem{
			{Line: 15, Key: "composites[0].parts.me.api", Msg: `"/api/shop/" names no apis[].path`}}},
		{"cors in an entry", head + "  - {name: shop, public_url: https://shop.example.com, oidc: {client_id: shop}, cors: {allowed_origins: ['*']}}\n", []Problem{
			{Line: 8, Key: "frontends[0].cors.allowed_origins[0]", Msg: "wildcard CORS with credentials is refused"}}},
		{"cors repeated in an entry", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc: {client_id: shop}\n    cors:\n      allowed_origins:\n        - https://a.example.com\n        - https://a.example.com\n", []Problem{
			{Line: 14, Key: "frontends[0].cors.allowed_origins[1]", Msg: "repeats frontends[0].cors.allowed_origins[0]", Warning: true}}},
		{"rate_limit in an entry", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc: {client_id: shop}\n    rate_limit: {api_per_second: -1}\n", []Problem{
			{Line: 11, Key: "frontends[0].rate_limit", Msg: "limits must not be negative"}}},
		{"csrf in an entry", head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc: {client_id: shop}\n    csrf:\n      header: Content-Type\n", []Problem{
			{Line: 12, Key: "frontends[0].csrf.header", Msg: "is sent cross-site without a CORS preflight"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, sortedByKey(frontendProblems(t, tt.data)), sortedByKey(tt.want))
		})
	}
}

// TestLocalhostNames checks that every name under .localhost counts as
// localhost (RFC 6761 §6.3), without frontends: too.
func TestLocalhostNames(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []Problem
	}{
		{"public_url", edit("", "public_url: https://app.example.com\n", "public_url: 'http://app.localhost:8080'\n"), nil},
		{"public_url upper case", edit("", "public_url: https://app.example.com\n", "public_url: 'http://App.LocalHost'\n"), nil},
		{"issuer", edit("", "  issuer: https://idp.example.com\n", "  issuer: 'http://idp.localhost:9000/realms/x'\n"), nil},
		{"not a suffix", edit("", "public_url: https://app.example.com\n", "public_url: http://localhost.example.com\n"), []Problem{
			{Key: "session.cookie_name", Msg: "a __Host- or __Secure- cookie needs Secure"},
			{Line: 1, Key: "public_url", Msg: "use https, plain http is allowed only for localhost"}}},
		{"a label ending in localhost", edit("", "public_url: https://app.example.com\n", "public_url: http://notlocalhost\n"), []Problem{
			{Key: "session.cookie_name", Msg: "a __Host- or __Secure- cookie needs Secure"},
			{Line: 1, Key: "public_url", Msg: "use https, plain http is allowed only for localhost"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, sortedByKey(problemsOf(t, tt.data, nil)), sortedByKey(tt.want))
		})
	}
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "a.localhost": true, "a.b.localhost": true, "127.0.0.1": true, "::1": true,
		"localhost.example.com": false, "notlocalhost": false, "example.com": false, "": false,
	} {
		if got := isLocalhost(host); got != want {
			t.Errorf("isLocalhost(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestFrontendsMerge checks how entries lay their keys over the top
// level: a key set in the entry wins, structs and maps merge key by key,
// lists and single values are replaced, null inherits, and the keys of a
// credential go together.
func TestFrontendsMerge(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "admin.pem")
	if err := os.WriteFile(keyFile, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := `oidc:
  issuer: https://idp.example.com
  client_id: web
  client_secret: top-secret
  scopes: [openid, profile]
  auth_params: {audience: orders, acr_values: top}
  userinfo: true
  par: required
  service_client: {client_id: svc, client_secret: svc-secret}
session:
  store: memory
  keys: [0123456789abcdef0123456789abcdef]
  idle_timeout: 1h
  same_site: lax
frontend: {dir: ` + dir + `}
csrf: {header: X-Requested-By, value: "yes"}
cors: {allowed_origins: ['https://a.example.com']}
rate_limit: {api_per_second: 5}
apis:
  - {path: /api/shared/, upstream: http://shared.internal/}
composites:
  - path: /bff/dash
    parts: {me: {api: /api/shared/}}
frontends:
  - name: shop
    public_url: https://shop.example.com
    oidc: {client_id: shop, client_secret: shop-secret, auth_params: {acr_values: shop}}
    cors: {allowed_origins: []}
    rate_limit: {login_per_minute: 3}
    apis:
      - {path: /api/shop/, upstream: http://shop.internal/}
  - name: admin
    public_url: https://shop.example.com
    path: /admin/
    oidc:
      client_id: admin
      client_auth: private_key_jwt
      private_key_file: ` + keyFile + `
      scopes: [openid]
      userinfo: false
      par: null
      callback_path: /signin
      service_client: {client_id: admin-svc}
    frontend: {dev_server: 'http://localhost:5173'}
    csrf: {value: "2"}
    apis:
      - {path: /api/admin/, upstream: http://admin.internal/, token: client}
    composites:
      - path: /bff/admin-dash
        parts: {me: {api: /api/shared/}, admin: {api: /api/admin/}}
`
	cfg := parseFrontends(t, data, nil)
	if w := cfg.Warnings(); w != nil {
		t.Errorf("warnings:\n%v", w)
	}
	apps := cfg.Apps()
	if len(apps) != 2 {
		t.Fatalf("%d apps, want 2", len(apps))
	}
	shop, admin := apps[0], apps[1]
	checks := []struct {
		key       string
		got, want any
	}{
		{"shop name", shop.Name, "shop"},
		{"shop public_url", shop.PublicURL, "https://shop.example.com"},
		{"shop path", shop.Path, "/"},
		{"shop client_id", shop.OIDC.ClientID, "shop"},
		{"shop client_secret", shop.OIDC.ClientSecret, "shop-secret"},
		{"shop issuer", shop.OIDC.Issuer, "https://idp.example.com"},
		{"shop scopes", shop.OIDC.Scopes, []string{"openid", "profile"}},
		{"shop auth_params", shop.OIDC.AuthParams, map[string]string{"audience": "orders", "acr_values": "shop"}},
		{"shop userinfo", shop.OIDC.UserInfo, true},
		{"shop service_client", *shop.OIDC.ServiceClient, ServiceClient{ClientID: "svc", ClientSecret: "svc-secret"}},
		{"shop callback_path", shop.OIDC.CallbackPath, "/bff/callback"},
		{"shop post_logout_path", shop.OIDC.PostLogoutPath, "/"},
		{"shop session.store", shop.Session.Store, "memory"},
		{"shop session.keys", shop.Session.Keys, []string{"0123456789abcdef0123456789abcdef"}},
		{"shop idle_timeout", shop.Session.IdleTimeout, time.Hour},
		{"shop same_site", shop.Session.SameSite, "lax"},
		{"shop cookie_name", shop.Session.CookieName, "__Host-Http-cloakroom-shop"},
		{"shop cookie path", shop.CookiePath, "/"},
		{"shop frontend", shop.Frontend, Frontend{Dir: dir}},
		{"shop csrf", shop.CSRF, CSRF{Header: "X-Requested-By", Value: "yes"}},
		{"shop cors", shop.CORS, CORS{AllowedOrigins: []string{}}},
		{"shop rate_limit", shop.RateLimit, RateLimit{APIPerSecond: 5, LoginPerMinute: 3}},
		{"shop apis", paths(shop.APIs), []string{"/api/shared/", "/api/shop/"}},
		{"shop composites", compositePaths(shop.Composites), []string{"/bff/dash me=/api/shared/"}},

		{"admin path", admin.Path, "/admin/"},
		{"admin client_id", admin.OIDC.ClientID, "admin"},
		{"admin client_secret", admin.OIDC.ClientSecret, ""},
		{"admin client_auth", admin.OIDC.ClientAuth, PrivateKeyJWT},
		{"admin private_key_file", admin.OIDC.PrivateKeyFile, keyFile},
		{"admin scopes", admin.OIDC.Scopes, []string{"openid"}},
		{"admin auth_params", admin.OIDC.AuthParams, map[string]string{"audience": "orders", "acr_values": "top"}},
		{"admin userinfo", admin.OIDC.UserInfo, false},
		{"admin par", admin.OIDC.PAR, PARRequired},
		{"admin service_client", *admin.OIDC.ServiceClient, ServiceClient{ClientID: "admin-svc", ClientSecret: "svc-secret"}},
		{"admin callback_path", admin.OIDC.CallbackPath, "/admin/signin"},
		{"admin post_logout_path", admin.OIDC.PostLogoutPath, "/admin/"},
		{"admin cookie_name", admin.Session.CookieName, "__Secure-Http-cloakroom-admin"},
		{"admin cookie path", admin.CookiePath, "/admin/"},
		{"admin frontend", admin.Frontend, Frontend{DevServer: "http://localhost:5173"}},
		{"admin csrf", admin.CSRF, CSRF{Header: "X-Requested-By", Value: "2"}},
		{"admin cors", admin.CORS, CORS{AllowedOrigins: []string{"https://a.example.com"}}},
		{"admin rate_limit", admin.RateLimit, RateLimit{APIPerSecond: 5, LoginPerMinute: 30}},
		{"admin apis", paths(admin.APIs), []string{"/admin/api/shared/", "/admin/api/admin/"}},
		{"admin api token", admin.APIs[1].Token, TokenClient},
		{"admin composites", compositePaths(admin.Composites), []string{"/admin/bff/dash me=/admin/api/shared/", "/admin/bff/admin-dash admin=/admin/api/admin/ me=/admin/api/shared/"}},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.key, diff)
		}
	}

	// AppKey names what the file gives, where it gives it.
	for _, k := range []struct {
		app       int
		key, want string
		line      int
	}{
		{0, "oidc.issuer", "oidc.issuer", 2},
		{0, "oidc.client_secret", "frontends[0].oidc.client_secret", 27},
		{1, "oidc.private_key_file", "frontends[1].oidc.private_key_file", 38},
		{1, "oidc.client_secret", "frontends[1].oidc.client_secret", 0},
		{1, "oidc.par", "oidc.par", 8},
		{0, "apis[0].upstream", "apis[0].upstream", 20},
		{1, "apis[1].upstream", "frontends[1].apis[0].upstream", 47},
		{1, "composites[1].parts.admin.api", "frontends[1].composites[0].parts.admin.api", 50},
		{1, "session.keys", "session.keys", 12},
	} {
		got := cfg.AppKey(k.app, k.key)
		if got != k.want || cfg.Line(got) != k.line {
			t.Errorf("AppKey(%d, %q) = %q at line %d, want %q at line %d", k.app, k.key, got, cfg.Line(got), k.want, k.line)
		}
	}

	// Nothing of an entry leaks into the top level or another entry.
	if cfg.OIDC.AuthParams["acr_values"] != "top" || cfg.OIDC.ServiceClient.ClientID != "svc" || cfg.APIs[0].Path != "/api/shared/" ||
		cfg.Composites[0].Parts["me"].API != "/api/shared/" {
		t.Errorf("the top level changed: %+v", cfg.OIDC)
	}
	shop.OIDC.AuthParams["x"] = "y"
	if _, ok := cfg.Apps()[1].OIDC.AuthParams["x"]; ok {
		t.Error("apps share a map")
	}
}

func paths(apis []API) []string {
	var out []string
	for _, a := range apis {
		out = append(out, a.Path)
	}
	return out
}

func compositePaths(comps []Composite) []string {
	var out []string
	for _, c := range comps {
		s := c.Path
		for _, name := range sortedKeys(c.Parts) {
			s += " " + name + "=" + c.Parts[name].API
		}
		out = append(out, s)
	}
	return out
}

// TestAppsWithoutFrontends checks that a file without frontends: is one
// frontend, exactly the top level.
func TestAppsWithoutFrontends(t *testing.T) {
	cfg, err := Parse("cloakroom.yaml", []byte(edit(`apis:
  - {path: /api/, upstream: http://api.internal/}
composites:
  - {path: /bff/dash, parts: {me: {api: /api/}}}
cors: {allowed_origins: ['https://a.example.com']}
`)), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []App{{
		PublicURL:  cfg.PublicURL,
		Path:       "/",
		OIDC:       cfg.OIDC,
		Session:    cfg.Session,
		CookiePath: "/",
		Frontend:   cfg.Frontend,
		CORS:       cfg.CORS,
		CSRF:       cfg.CSRF,
		RateLimit:  cfg.RateLimit,
		APIs:       cfg.APIs,
		Composites: cfg.Composites,
	}}
	if diff := cmp.Diff(want, cfg.Apps()); diff != "" {
		t.Errorf("Apps (-want +got):\n%s", diff)
	}
	a := cfg.Apps()[0]
	if a.Name != "" || a.Session.CookieName != DefaultCookieName || a.OIDC.CallbackPath != "/bff/callback" || a.APIs[0].Path != "/api/" {
		t.Errorf("got %+v, want the top level's values", a)
	}
}

// TestAppsInCode checks a Config made in code: a value other than the
// zero value is set, a non-nil empty list too.
func TestAppsInCode(t *testing.T) {
	c := Default()
	c.OIDC.Issuer = "https://idp.example.com"
	c.OIDC.ClientSecret = "top-secret"
	c.Session.Keys = []string{"0123456789abcdef0123456789abcdef"}
	c.CORS.AllowedOrigins = []string{"https://a.example.com"}
	c.APIs = []API{{Path: "/api/", Upstream: "http://api.internal/", Token: TokenUser}}
	c.Frontends = []FrontendSpec{
		{Name: "shop", PublicURL: "https://shop.example.com", OIDC: OIDC{ClientID: "shop"}},
		{Name: "admin", PublicURL: "https://shop.example.com", Path: "/admin/",
			OIDC: OIDC{ClientID: "admin", ClientSecretFile: "/nonexistent", ClientSecret: "admin-secret"}, CORS: CORS{AllowedOrigins: []string{}}},
	}
	got := withoutNotServed(c.Validate())
	checkProblems(t, got, []Problem{{Key: "frontends[1].oidc.client_secret_file", Msg: "set either client_secret or client_secret_file, not both"}})
	c.Frontends[1].OIDC.ClientSecretFile = ""
	if got := withoutNotServed(c.Validate()); len(got) > 0 {
		t.Fatalf("Validate() = %v", got)
	}
	apps := c.Apps()
	checks := []struct {
		key       string
		got, want any
	}{
		{"shop secret", apps[0].OIDC.ClientSecret, "top-secret"},
		{"shop cors", apps[0].CORS.AllowedOrigins, []string{"https://a.example.com"}},
		{"shop cookie", apps[0].Session.CookieName, "__Host-Http-cloakroom-shop"},
		{"admin secret", apps[1].OIDC.ClientSecret, "admin-secret"},
		{"admin cors", apps[1].CORS.AllowedOrigins, []string{}},
		{"admin cookie", apps[1].Session.CookieName, "__Secure-Http-cloakroom-admin"},
		{"admin apis", paths(apps[1].APIs), []string{"/admin/api/"}},
		{"admin scopes", apps[1].OIDC.Scopes, []string{"openid", "profile", "email", "offline_access"}},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.key, diff)
		}
	}
}

// TestFrontendsSecretFiles checks that an entry's client_secret_file is
// read and named by its own key, and that a credential is never half the
// entry's and half the top level's.
func TestFrontendsSecretFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc:\n      client_id: shop\n      client_secret_file: " + secret + "\n" +
		"  - {name: admin, public_url: https://admin.example.com, oidc: {client_id: admin}}\n"
	apps := parseFrontends(t, data, nil).Apps()
	if got, want := apps[0].OIDC.ClientSecret, "from-file"; got != want {
		t.Errorf("shop secret %q, want %q", got, want)
	}
	if got, want := apps[1].OIDC.ClientSecret, "not-a-real-secret"; got != want {
		t.Errorf("admin secret %q, want %q", got, want)
	}

	// A top-level file and an entry's own secret.
	data = strings.Replace(head, "  client_secret: not-a-real-secret\n", "  client_secret_file: "+secret+"\n", 1) +
		"  - {name: shop, public_url: https://shop.example.com, oidc: {client_id: shop, client_secret: own}}\n" +
		"  - {name: admin, public_url: https://admin.example.com, oidc: {client_id: admin}}\n"
	apps = parseFrontends(t, data, nil).Apps()
	if got := []string{apps[0].OIDC.ClientSecret, apps[0].OIDC.ClientSecretFile, apps[1].OIDC.ClientSecret}; !slices.Equal(got, []string{"own", "", "from-file"}) {
		t.Errorf("secrets %q", got)
	}

	data = head + "  - name: shop\n    public_url: https://shop.example.com\n    oidc:\n      client_id: shop\n      client_secret_file: " + filepath.Join(dir, "nope") + "\n"
	checkProblems(t, frontendProblems(t, data), []Problem{
		{Line: 12, Key: "frontends[0].oidc.client_secret_file", Msg: "cannot read the file: it does not exist"},
	})
}

// TestFrontendsDecodersAgree checks this decoder against goccy/go-yaml on
// a file with frontends:.
func TestFrontendsDecodersAgree(t *testing.T) {
	data := head + `  - name: shop
    public_url: https://shop.example.com
    oidc: {client_id: shop, scopes: [openid], service_client: {client_id: s, client_secret: x}}
    session: {cookie_name: shop, idle_timeout: 5m}
    cors: {allowed_origins: []}
    apis: [{path: /api/, upstream: http://api.internal/, token: client, timeout: 30s, max_body_bytes: 10485760}]
    composites: [{path: /bff/d, parts: {a: {api: /api/}}}]
  - {name: admin, public_url: https://admin.example.com, path: /admin/, oidc: {client_id: admin}}
`
	got := parseFrontends(t, data, nil)
	want := Default()
	if err := yaml.UnmarshalWithOptions([]byte(data), want, yaml.DisallowUnknownField()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, ignoreMeta); diff != "" {
		t.Errorf("this decoder (+) and goccy/go-yaml (-) disagree:\n%s", diff)
	}
}

// TestFrontendsShapes checks odd shapes of frontends: each is a problem at
// its line, never a crash, and a frontends: that did not decode still
// makes the top level no frontend.
func TestFrontendsShapes(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []Problem // Line -1: any line; each must be among the problems
		only bool      // and nothing else
	}{
		{"single value", head + "  1\n", []Problem{{Line: 8, Key: "frontends", Msg: "expected a list, not a single value"}}, true},
		{"mapping", head + "  name: shop\n", []Problem{{Line: 8, Key: "frontends", Msg: "expected a list, not a mapping"}}, true},
		{"null", head + "  null\n", []Problem{{Key: "public_url", Msg: "required"}}, false},
		{"list of values", head + "  - 1\n  - [a]\n", []Problem{
			{Line: 8, Key: "frontends[0]", Msg: "expected a mapping of keys to values, not a single value"},
			{Line: 9, Key: "frontends[1]", Msg: "expected a mapping of keys to values, not a list"}}, true},
		{"null entry", head + "  - null\n", []Problem{{Line: 8, Key: "frontends[0].name", Msg: "required"}}, false},
		{"sections of the wrong shape", head + "  - {name: x, public_url: https://x.example.com, oidc: [1], session: 2, apis: {a: 1}, path: {a: b}}\n", []Problem{
			{Line: 8, Key: "frontends[0].oidc", Msg: "expected a mapping"},
			{Line: 8, Key: "frontends[0].session", Msg: "expected a mapping"},
			{Line: 8, Key: "frontends[0].apis", Msg: "expected a list"},
			{Line: 8, Key: "frontends[0].path", Msg: "expected a single value"}}, true},
		{"nested frontends", head + "  - {name: x, public_url: https://x.example.com, oidc: {client_id: x}, frontends: []}\n", []Problem{
			{Line: 8, Key: "frontends[0].frontends", Msg: "is top-level only"}}, true},
		{"null sections", head + "  - {name: x, public_url: https://x.example.com, oidc: {client_id: x, service_client: null}, session: null, cors: null}\n", nil, true},
		{"service client of the wrong shape", head + "  - {name: x, public_url: https://x.example.com, oidc: {client_id: x, service_client: 1}}\n", []Problem{
			{Line: 8, Key: "frontends[0].oidc.service_client", Msg: "expected a mapping"}}, true},
		{"aliases", "x: &f {name: shop, public_url: https://shop.example.com, oidc: {client_id: shop}}\n" + head + "  - *f\n  - *f\n", []Problem{
			{Line: 1, Key: "x", Msg: "unknown key"},
			{Line: -1, Key: "frontends[1].name", Msg: "repeats frontends[0].name"}}, false},
		{"merge keys", head + "  - &a {name: a, public_url: https://a.example.com, oidc: {client_id: a}}\n  - <<: *a\n    name: b\n", []Problem{
			{Line: -1, Key: "frontends[1].path", Msg: `"/" is also the path of frontends[0] (a)`}}, true},
		{"alias to itself", head + "  - &a {name: a, oidc: *a}\n", []Problem{{Line: 8, Key: "frontends[0].oidc.name", Msg: "unknown key"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := frontendProblems(t, tt.data)
			for _, w := range tt.want {
				if !slices.ContainsFunc(got, func(p Problem) bool {
					return (p.Line == w.Line || w.Line < 0) && p.Key == w.Key && strings.Contains(p.Msg, w.Msg)
				}) {
					t.Errorf("problems %v lack %v", got, w)
				}
			}
			if tt.only && len(got) != len(tt.want) {
				t.Errorf("problems %v, want only %v", got, tt.want)
			}
		})
	}
}

// TestGoldenFrontends is the check output of a frontends: list broken in
// the ways one can be; the problem of notServed is left out.
func TestGoldenFrontends(t *testing.T) {
	t.Chdir("testdata")
	_, err := Load("frontends.yaml", env(map[string]string{
		"OIDC_CLIENT_SECRET": "env-secret-value",
		"SESSION_KEY":        "env-session-key-0123456789abcdef0123",
	}))
	if err == nil {
		t.Fatal("frontends.yaml loaded")
	}
	got := withoutNotServedLines(err.Error() + "\n")
	const golden = "check-frontends.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("Error() (-%s +got):\n%s", golden, diff)
	}
	for _, secret := range []string{"env-secret-value", "env-session-key", "copy-secret-value"} {
		if strings.Contains(got, secret) {
			t.Errorf("problems print the secret %q", secret)
		}
	}
}

// withoutNotServedLines drops the line of notServed from check's output.
func withoutNotServedLines(out string) string {
	lines := strings.SplitAfter(out, "\n")
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool {
		return strings.HasSuffix(l, ": frontends: "+notServed+"\n")
	}), "")
}

func FuzzFrontends(f *testing.F) {
	f.Add([]byte(head + shopEntry + adminEntry))
	f.Add([]byte(head + "  - {name: a, public_url: 'http://a.localhost', path: /x/, session: {cookie_name: __Host-a}, oidc: {service_client: {client_id: s}}}\n"))
	f.Add([]byte(head + "  - &a {name: a, oidc: *a, apis: [{path: /a/}], composites: [{path: /c, parts: {p: {api: /a/}}}]}\n  - <<: *a\n"))
	f.Add([]byte("frontends: [1, null, [], {}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, list := parse("f.yaml", data, fuzzEnv)
		for _, p := range withoutNotServed(list) {
			if !p.Warning {
				return
			}
		}
		if cfg == nil {
			t.Fatal("no problem and no config")
		}
		apps := cfg.Apps()
		if n := max(len(cfg.Frontends), 1); len(apps) != n {
			t.Errorf("%d apps of %d frontends", len(apps), n)
		}
		for _, a := range apps {
			if !strings.HasPrefix(a.OIDC.CallbackPath, a.Path) || a.Session.CookieName == "" {
				t.Errorf("app %+v", a)
			}
		}
	})
}
