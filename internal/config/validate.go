package config

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate checks c and returns every problem, warnings included, ordered
// by line; nil when there is nothing to say. Lines are those of the file c
// was parsed from, 0 for a key the file does not hold or a Config made in
// code. Besides the values it looks at the file system: frontend.dir must
// be a directory, oidc.private_key_file must exist, and the files of
// apis[].tls must parse. With frontends: it checks each frontend as Apps
// merges it (see validate_frontends.go).
func (c *Config) Validate() []Problem {
	if c.hasFrontends() {
		return c.validateFrontends()
	}
	v := &validator{c: c}
	v.addresses()
	v.shutdownDelay()
	v.listenTLS()
	v.publicURL()
	v.frontendValues()
	v.trustedProxies()
	sortProblems(v.list)
	return v.list
}

// frontendValues checks what makes a frontend: everything but the keys
// that apply to the whole gateway.
func (v *validator) frontendValues() {
	v.oidc()
	v.clockSkew()
	v.par()
	v.fapi2()
	v.session()
	v.csrf()
	v.cors()
	v.frontend()
	v.apis()
	v.composites()
}

type validator struct {
	c    *Config
	list []Problem
	// scope, when set, is the frontends[] entry c was merged for: keys
	// name what the file says, in the entry or at the top level.
	scope *scope
}

// Line is the line of key (e.g. "composites[0].path") in the file, or 0.
func (c *Config) Line(key string) int { return c.line(key) }

func (c *Config) line(key string) int {
	if c.meta == nil {
		return 0
	}
	return c.meta.lines[key]
}

func (v *validator) errorf(key, format string, args ...any) {
	key = v.at(key)
	v.list = append(v.list, Problem{Line: v.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) warnf(key, format string, args ...any) {
	key = v.at(key)
	v.list = append(v.list, Problem{Line: v.line(key), Key: key, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// quote quotes a value for a message, unless it came from the environment.
// Secrets are never passed to it.
func (v *validator) quote(key, s string) string {
	if v.c.meta != nil && v.c.meta.fromEnv[v.at(key)] {
		return "the value"
	}
	return strconv.Quote(s)
}

// isLocalhost reports whether host is this machine for the rules on plain
// http and cookie prefixes: localhost and every name under .localhost
// (RFC 6761 §6.3, which browsers resolve to loopback and treat as secure
// contexts), 127.0.0.1 and ::1.
func isLocalhost(host string) bool {
	h := strings.ToLower(host)
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || host == "127.0.0.1" || host == "::1"
}

// Endpoints the gateway answers itself.
var bffEndpoints = []string{
	"/bff/login", "/bff/user", "/bff/logout", "/bff/backchannel",
	"/bff/frontchannel", "/bff/silent-login-callback", "/bff/silent-login", "/bff/token", "/bff/jwks",
}

const msgPlainHTTP = "use https, plain http is allowed only for localhost"

func (v *validator) addresses() {
	c := v.c
	if c.Listen == "" {
		v.errorf("listen", "required: the address to listen on, e.g. :8080")
	} else {
		v.hostPort("listen", c.Listen)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		v.errorf("log_level", "%q is not a level: use debug, info, warn or error", c.LogLevel)
	}
	if c.AdminToken != "" && c.AdminTokenFile != "" && !(c.meta != nil && c.meta.adminFromFile) {
		v.errorf("admin_token_file", "set either admin_token or admin_token_file, not both: remove one")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 32 {
		v.errorf("admin_token", "must be at least 32 bytes; generate one with: openssl rand -base64 32")
	}
	if c.AdminListen == "" {
		if c.AdminToken != "" {
			v.warnf("admin_token", "is unused without admin_listen: set admin_listen, e.g. 127.0.0.1:9090")
		}
		return
	}
	host, ok := v.hostPort("admin_listen", c.AdminListen)
	switch {
	case !ok:
	case c.AdminListen == c.Listen:
		v.errorf("admin_listen", "is the same address as listen: give it its own port, e.g. 127.0.0.1:9090")
	case !isLoopback(host):
		v.warnf("admin_listen", "serves the session admin API beyond this machine: bind it to 127.0.0.1 unless a network policy guards it")
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func (v *validator) hostPort(key, s string) (string, bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.errorf(key, "%s is not host:port: write e.g. :8080 or 127.0.0.1:8080", v.quote(key, s))
		return "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.errorf(key, "%s has no port number from 0 to 65535: write e.g. :8080 or 127.0.0.1:8080", v.quote(key, s))
		return "", false
	}
	return host, true
}

// httpURL parses an absolute http(s) URL with a host and without user
// info or fragment.
func (v *validator) httpURL(key, s, example string) (*url.URL, bool) {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "":
		v.errorf(key, "%s is not an absolute http(s) URL: write e.g. %s", v.quote(key, s), example)
	case u.User != nil:
		v.errorf(key, "must not hold a user name or password: remove the part before @")
	case u.Fragment != "" || strings.Contains(s, "#"):
		v.errorf(key, "must not have a #fragment: remove it")
	default:
		return u, true
	}
	return nil, false
}

// publicOrigin returns public_url when it is valid.
func (c *Config) publicOrigin() (*url.URL, bool) {
	u, err := url.Parse(c.PublicURL)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, false
	}
	return u, true
}

func (v *validator) publicURL() {
	const key = "public_url"
	s := v.c.PublicURL
	if s == "" {
		v.errorf(key, "required: the origin the browser sees, e.g. https://app.example.com")
		return
	}
	u, ok := v.httpURL(key, s, "https://app.example.com")
	switch {
	case !ok:
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery:
		v.errorf(key, "must be an origin without path or query: write scheme://host[:port], e.g. https://app.example.com")
	case u.Scheme == "http" && !isLocalhost(u.Hostname()):
		v.errorf(key, msgPlainHTTP)
	}
}

func (v *validator) oidc() {
	o := &v.c.OIDC
	if o.Issuer == "" {
		v.errorf("oidc.issuer", "required: the IdP's issuer URL, e.g. https://idp.example.com")
	} else if u, ok := v.httpURL("oidc.issuer", o.Issuer, "https://idp.example.com"); ok {
		switch {
		case u.RawQuery != "" || u.ForceQuery:
			v.errorf("oidc.issuer", "must not have a query: an issuer is scheme://host[/path]")
		case u.Scheme == "http" && !isLocalhost(u.Hostname()):
			v.errorf("oidc.issuer", msgPlainHTTP)
		}
	}
	if o.ClientID == "" {
		v.errorf("oidc.client_id", "required: the client id registered with the IdP")
	}
	v.clientAuth(clientKeys{
		prefix: "oidc", secret: o.ClientSecret, secretFile: o.ClientSecretFile, auth: o.ClientAuth, keyFile: o.PrivateKeyFile,
		fromFile: v.c.meta != nil && v.c.meta.secretFromFile, envVar: "OIDC_CLIENT_SECRET",
	})
	v.serviceClient()
	v.clientCertificate()
	if !slices.Contains(o.Scopes, "openid") {
		v.errorf("oidc.scopes", "must include openid: e.g. [openid, profile, email, offline_access]")
	}
	for i, s := range o.Scopes {
		if s == "" || strings.ContainsFunc(s, isSpaceOrControl) {
			v.errorf(fmt.Sprintf("oidc.scopes[%d]", i), "must be one word without spaces: list each scope on its own")
		}
	}
	if v.localPath("oidc.callback_path", o.CallbackPath, "/bff/callback") {
		v.notReserved("oidc.callback_path", o.CallbackPath)
	}
	v.localPath("oidc.post_logout_path", o.PostLogoutPath, "/")
	names := sortedKeys(o.AuthParams)
	for _, name := range names {
		if slices.Contains(reservedAuthParams, name) {
			v.errorf(join("oidc.auth_params", name), "is set by the gateway itself: remove it")
		}
	}
}

// maxShutdownDelay bounds shutdown_delay: load balancers notice a failing
// health check within seconds, and an orchestrator's grace period must
// cover the delay and the drain after it.
const maxShutdownDelay = 5 * time.Minute

func (v *validator) shutdownDelay() {
	switch d := v.c.ShutdownDelay; {
	case d < 0:
		v.errorf("shutdown_delay", "must not be negative: write e.g. 5s, or 0 to drain at once")
	case d > maxShutdownDelay:
		v.errorf("shutdown_delay", "%s is more than %s: a load balancer's health checks notice a 503 within seconds; write e.g. 5s", d, maxShutdownDelay)
	case d > 0 && v.c.AdminListen == "":
		v.warnf("shutdown_delay", "delays the shutdown, but /readyz, which tells load balancers, is served only on admin_listen: set admin_listen, e.g. 127.0.0.1:9090")
	}
}

// maxClockSkew bounds oidc.clock_skew: more would accept tokens long
// expired.
const maxClockSkew = 5 * time.Minute

func (v *validator) clockSkew() {
	switch s := v.c.OIDC.ClockSkew; {
	case s < 0:
		v.errorf("oidc.clock_skew", "must not be negative: write e.g. 60s, or 0 for no leeway")
	case s > maxClockSkew:
		v.errorf("oidc.clock_skew", "%s is more than %s: a larger leeway would accept long-expired tokens; fix the clocks (NTP) and write e.g. 60s", s, maxClockSkew)
	}
}

// reservedAuthParams are the authorization request parameters the gateway
// sets; auth_params may not override them.
var reservedAuthParams = []string{
	"response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
	"code_challenge", "code_challenge_method", "response_mode", "prompt",
	"request", "request_uri",
}

// clientKeys are the authentication settings of one client: the main one
// (prefix "oidc") or the service client ("oidc.service_client").
type clientKeys struct {
	prefix                            string
	secret, secretFile, auth, keyFile string
	// fromFile tells that secret was read from secretFile.
	fromFile bool
	// envVar is the variable the "required" message suggests.
	envVar string
}

// serviceClient checks oidc.service_client, the second client that gets
// client-credentials and exchanged tokens.
func (v *validator) serviceClient() {
	sc := v.c.OIDC.ServiceClient
	if sc == nil {
		return
	}
	const p = "oidc.service_client"
	switch sc.ClientID {
	case "":
		v.errorf(p+".client_id", "required: the id of the second client registered with the IdP for client credentials and token exchange")
	case v.c.OIDC.ClientID:
		v.warnf(p+".client_id", "is oidc.client_id: register a second client, or remove service_client to let the main client get these tokens")
	}
	auth := sc.ClientAuth
	if auth == "" {
		auth = ClientSecretBasic
	}
	v.clientAuth(clientKeys{
		prefix: p, secret: sc.ClientSecret, secretFile: sc.ClientSecretFile, auth: auth, keyFile: sc.PrivateKeyFile,
		fromFile: v.c.meta != nil && v.c.meta.serviceSecretFromFile, envVar: "SERVICE_CLIENT_SECRET",
	})
	if !v.c.usesServiceClient() && !v.inherited(p) {
		v.warnf(p, "is not used: no apis[] route or composite part has token client, user_or_client or exchange")
	}
}

// usesServiceClient reports whether a route or composite part gets a token
// the service client would: client-credentials or exchanged.
func (c *Config) usesServiceClient() bool {
	uses := func(mode string) bool {
		return mode == TokenClient || mode == TokenUserOrClient || mode == TokenExchange
	}
	for _, a := range c.APIs {
		if uses(a.Token) {
			return true
		}
	}
	for _, comp := range c.Composites {
		for _, part := range comp.Parts {
			if uses(part.Token) {
				return true
			}
		}
	}
	return false
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}

// localPath checks a path of this origin; example shows a good one.
func (v *validator) localPath(key, s, example string) bool {
	switch {
	case s == "":
		v.errorf(key, "required: a path such as %s", example)
	case !strings.HasPrefix(s, "/"):
		v.errorf(key, "must start with /: write e.g. %s", example)
	case strings.HasPrefix(s, "//") || strings.HasPrefix(s, `/\`):
		v.errorf(key, "must not start with // or /\\, which browsers take for another host: write e.g. %s", example)
	case strings.ContainsAny(s, `?#%\`) || strings.ContainsFunc(s, isSpaceOrControl):
		v.errorf(key, "must be a plain path without query, fragment, escapes, backslashes, spaces or control characters")
	case hasDotSegment(s):
		v.errorf(key, "must not hold . or .. segments: write the path they lead to")
	default:
		return true
	}
	return false
}

func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// notReserved refuses a path the gateway's own endpoints answer.
func (v *validator) notReserved(key, p string) bool {
	for _, e := range bffEndpoints {
		if p == e || strings.HasPrefix(p, e+"/") {
			v.errorf(key, "collides with the gateway's own endpoint %s: choose another path", e)
			return false
		}
	}
	return true
}

func (v *validator) session() {
	s := &v.c.Session
	if v.scope == nil {
		v.store()
	}
	v.cookieName()
	switch s.SameSite {
	case "strict", "lax":
	case "none":
		v.errorf("session.same_site", "none would send the session cookie with cross-site requests: use strict or lax")
	default:
		v.errorf("session.same_site", "%s is not a SameSite mode: use strict or lax", v.quote("session.same_site", s.SameSite))
	}
	if s.IdleTimeout <= 0 {
		v.errorf("session.idle_timeout", "must be positive: write e.g. 30m")
	}
	if s.AbsoluteTimeout < s.IdleTimeout {
		v.errorf("session.absolute_timeout", "must be at least idle_timeout (%s): write e.g. 12h", s.IdleTimeout)
	}
	if s.RefreshBefore < 0 {
		v.errorf("session.refresh_before", "must not be negative: write e.g. 60s, or 0 to refresh only expired tokens")
	}
	if rl := v.c.RateLimit; rl.APIPerSecond < 0 || rl.LoginPerMinute < 0 {
		v.errorf("rate_limit", "limits must not be negative: 0 turns a limit off")
	}
	switch v.c.RateLimit.Store {
	case "", RateLimitLocal:
	case RateLimitSession:
		if !isRedisStore(s.Store) {
			v.errorf("rate_limit.store", "session needs a Redis session.store (redis://, rediss://, ...): write local for counters per instance")
		}
	default:
		v.errorf("rate_limit.store", "must be local or session, not %q", v.c.RateLimit.Store)
	}
	if s.MaxSessions < 0 {
		v.errorf("session.max_sessions", "must not be negative: write e.g. 100000, or 0 for no limit")
	}
	if v.scope == nil {
		v.keys()
	}
}

// store checks session.store, which every frontend shares.
func (v *validator) store() {
	if !validStore(v.c.Session.Store) {
		// The value is never shown: a redis URL may hold a password.
		v.errorf("session.store", "must be memory, cookie, file:PATH, or a redis://, rediss://, redis-sentinel:// or valkey:// URL")
	}
}

func validStore(s string) bool {
	switch {
	case s == "memory" || s == "cookie":
		return true
	case strings.HasPrefix(s, "file:"):
		return len(s) > len("file:")
	}
	for _, p := range []string{"redis://", "rediss://", "redis-sentinel://", "rediss-sentinel://", "valkey://", "valkeys://", "unix://"} {
		if strings.HasPrefix(s, p) {
			return len(s) > len(p)
		}
	}
	return false
}

const msgGenerateKey = "generate one with: openssl rand -base64 32"

// keys never shows a key: not its value, not its length.
func (v *validator) keys() {
	keys := v.c.Session.Keys
	if len(keys) == 0 {
		v.errorf("session.keys", "at least one key is required: %s", msgGenerateKey)
		return
	}
	for i, k := range keys {
		key := fmt.Sprintf("session.keys[%d]", i)
		b, ok := decodeKey(k)
		switch {
		case !ok:
			v.errorf(key, "is not valid base64 after the base64: prefix: %s", msgGenerateKey)
		case len(b) < 32:
			v.errorf(key, "must be at least 32 bytes; %s", msgGenerateKey)
		case slices.Index(keys, k) < i:
			v.warnf(key, "repeats session.keys[%d]: remove it", slices.Index(keys, k))
		}
	}
}

func (v *validator) cookieName() {
	const key = "session.cookie_name"
	name := v.c.Session.CookieName
	if name == "" || !isToken(name) {
		v.errorf(key, "must be a cookie name of letters, digits and !#$%%&'*+-.^_`|~: e.g. __Host-Http-cloakroom")
		return
	}
	u, ok := v.c.publicOrigin()
	secureOnly := strings.HasPrefix(name, "__Host-") || strings.HasPrefix(name, "__Secure-")
	if secureOnly && ok && u.Scheme != "https" && !isLocalhost(u.Hostname()) {
		v.errorf(key, "a __Host- or __Secure- cookie needs Secure, which needs public_url to use https (or be localhost): fix public_url, or drop the prefix")
	}
}

// isToken reports whether s is an RFC 9110 token: a header or cookie name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isNameChar(c) && !strings.ContainsRune("!#$%&'*+-.^`|~", rune(c)) {
			return false
		}
	}
	return true
}

// Request headers the CSRF header may not be: a cross-site form or fetch
// sends the safelisted ones without preflight, browsers do not let scripts
// set the forbidden ones, and the proxy sets Authorization itself.
var (
	safelistedHeaders = []string{"accept", "accept-language", "content-language", "content-type", "range"}
	forbiddenHeaders  = []string{
		"accept-charset", "accept-encoding", "access-control-request-headers",
		"access-control-request-method", "authorization", "connection", "content-length",
		"cookie", "cookie2", "date", "dnt", "expect", "host", "keep-alive", "origin",
		"referer", "set-cookie", "te", "trailer", "transfer-encoding", "upgrade", "via",
	}
)

func (v *validator) csrf() {
	c := v.c.CSRF
	h := strings.ToLower(c.Header)
	switch {
	case !isToken(c.Header):
		v.errorf("csrf.header", "must be a header name of letters, digits and -: e.g. X-CSRF")
	case slices.Contains(safelistedHeaders, h):
		v.errorf("csrf.header", "%s is sent cross-site without a CORS preflight, so it proves nothing: use e.g. X-CSRF", c.Header)
	case slices.Contains(forbiddenHeaders, h) || strings.HasPrefix(h, "proxy-") || strings.HasPrefix(h, "sec-"):
		v.errorf("csrf.header", "%s cannot be set by the SPA: use e.g. X-CSRF", c.Header)
	}
	switch {
	case c.Value == "":
		v.errorf("csrf.value", "required: the value the SPA sends, e.g. \"1\"")
	case strings.ContainsFunc(c.Value, func(r rune) bool { return r < ' ' || r == 0x7f }):
		v.errorf("csrf.value", "must not hold control characters or line breaks")
	}
}

func (v *validator) cors() {
	seen := map[string]int{}
	for i, o := range v.c.CORS.AllowedOrigins {
		key := v.at(fmt.Sprintf("cors.allowed_origins[%d]", i))
		if j, ok := seen[o]; ok {
			v.warnf(key, "repeats %s: remove it", v.at(fmt.Sprintf("cors.allowed_origins[%d]", j)))
			continue
		}
		seen[o] = i
		u, err := url.Parse(o)
		switch {
		case strings.Contains(o, "*"):
			v.errorf(key, "wildcard CORS with credentials is refused: list origins")
		case o == "null":
			v.errorf(key, "the null origin (sandboxed frames, file: pages) is refused with credentials: list origins")
		case err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" ||
			u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || strings.Contains(o, "#"):
			v.errorf(key, "%s is not an origin: write scheme://host[:port] without a path, e.g. https://admin.example.com", v.quote(key, o))
		case o != strings.ToLower(o):
			v.errorf(key, "must be lowercase, as browsers send the Origin header")
		}
	}
}

func (v *validator) frontend() {
	f := v.c.Frontend
	if f.Dir != "" && f.DevServer != "" {
		v.errorf("frontend.dev_server", "set either frontend.dir or frontend.dev_server, not both: remove one")
	}
	if f.DevServer != "" {
		v.httpURL("frontend.dev_server", f.DevServer, "http://localhost:5173")
	}
	if f.Dir != "" {
		fi, err := os.Stat(f.Dir)
		switch {
		case err != nil:
			v.errorf("frontend.dir", "%s: %s: build the SPA there or fix the path", v.quote("frontend.dir", f.Dir), fsReason(err))
		case !fi.IsDir():
			v.errorf("frontend.dir", "%s is not a directory: name the directory holding index.html", v.quote("frontend.dir", f.Dir))
		}
	}
}

var tokenModes = []string{TokenUser, TokenClient, TokenUserOrClient, TokenUserOrNone, TokenNone, TokenExchange}

func (v *validator) apis() {
	seen := map[string]int{}
	for i, a := range v.c.APIs {
		p := v.at(fmt.Sprintf("apis[%d]", i))
		v.apiPath(p+".path", a.Path)
		if j, ok := seen[a.Path]; ok && a.Path != "" {
			v.errorf(p+".path", "repeats %s.path: each path may appear once", v.at(fmt.Sprintf("apis[%d]", j)))
		} else {
			seen[a.Path] = i
		}
		if a.Upstream == "" {
			v.errorf(p+".upstream", "required: the URL the path maps to, e.g. http://orders.internal:8080/")
		} else {
			v.httpURL(p+".upstream", a.Upstream, "http://orders.internal:8080/")
		}
		if !slices.Contains(tokenModes, a.Token) {
			v.errorf(p+".token", "%s is not a token mode: use %s", v.quote(p+".token", a.Token), strings.Join(tokenModes, ", "))
		} else {
			v.tokenShape(p, a)
		}
		for j, m := range a.Methods {
			switch m {
			case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
			default:
				v.errorf(fmt.Sprintf("%s.methods[%d]", p, j), "%q is not an HTTP method: use upper case, e.g. GET or POST", m)
			}
		}
		if a.MaxBodyBytes < 0 {
			v.errorf(p+".max_body_bytes", "must not be negative: write e.g. 1048576, or 0 for no limit")
		}
		if a.Timeout < 0 {
			v.errorf(p+".timeout", "must not be negative: write e.g. 30s, or 0 for no per-route limit")
		}
		if a.Require != nil {
			v.require(p+".require", a.Require, a.Path)
		}
		v.upstreamTLS(p, a)
		v.mediate(p, a)
	}
}

func (v *validator) apiPath(key, s string) {
	switch {
	case s == "":
		v.errorf(key, "required: the path prefix to proxy, e.g. /api/orders/")
	case !strings.HasPrefix(s, "/") || !strings.HasSuffix(s, "/"):
		v.errorf(key, "must start and end with /: write e.g. /api/orders/")
	case strings.HasPrefix(s, "/bff/"):
		v.errorf(key, "must not be under /bff/, which the gateway answers itself: use e.g. /api/...")
	case strings.ContainsAny(s, `?#%\`) || strings.ContainsFunc(s, isSpaceOrControl):
		v.errorf(key, "must be a plain path without query, fragment, escapes, backslashes, spaces or control characters")
	case strings.Contains(s, "//") || hasDotSegment(s):
		v.errorf(key, "must be a clean path without //, . or .. segments")
	default:
		// Parameters ({id}) are whole segments with plain names, for
		// policies that bind them to claims.
		for _, seg := range strings.Split(strings.Trim(s, "/"), "/") {
			if !strings.ContainsAny(seg, "{}") {
				continue
			}
			name, ok := strings.CutPrefix(seg, "{")
			name, ok2 := strings.CutSuffix(name, "}")
			if !ok || !ok2 || name == "" || strings.ContainsFunc(name, func(r rune) bool {
				return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
			}) {
				v.errorf(key, "a path parameter is a whole segment with a plain name, e.g. /api/users/{id}/")
				return
			}
		}
	}
}

// tokenShape checks the keys that shape client and exchange tokens; a
// user_or_client route uses a client token for anonymous callers.
func (v *validator) tokenShape(p string, a API) {
	switch a.Token {
	case TokenClient, TokenUserOrClient, TokenExchange:
	default:
		if a.Mediate {
			break // they narrow the token POST /bff/token hands out
		}
		for _, f := range []struct{ key, val string }{
			{"scopes", strings.Join(a.Scopes, " ")}, {"resource", a.Resource}, {"audience", a.Audience},
		} {
			if f.val != "" {
				v.warnf(p+"."+f.key, "is used only with token client, user_or_client or exchange: remove it or change token")
			}
		}
	}
	if a.Token == TokenExchange && a.Audience == "" && a.Resource == "" {
		v.errorf(p+".token", "exchange needs %s.audience or %s.resource: name the API the token is for", p, p)
	}
	if a.Resource != "" {
		if u, err := url.Parse(a.Resource); err != nil || !u.IsAbs() || strings.Contains(a.Resource, "#") {
			v.errorf(p+".resource", "must be an absolute URI without #fragment (RFC 8707): e.g. https://orders.example.com")
		}
	}
	for i, s := range a.Scopes {
		if s == "" || strings.ContainsFunc(s, isSpaceOrControl) {
			v.errorf(fmt.Sprintf("%s.scopes[%d]", p, i), "must be one word without spaces: list each scope on its own")
		}
	}
}

// require checks a policy; path is the pattern its path bindings refer to
// ("" for API routes, which have no path parameters).
func (v *validator) require(p string, r *Require, path string) {
	for _, name := range sortedKeys(r.Path) {
		key := join(p+".path", name)
		bind := r.Path[name]
		switch {
		case path == "":
			v.errorf(key, "path bindings need a path with parameters, e.g. /api/users/{id}/")
		case !strings.Contains(path, "{"+name+"}"):
			v.errorf(key, "the path %q has no {%s} parameter", path, name)
		case !strings.HasPrefix(bind, "{claims.") || !strings.HasSuffix(bind, "}") || len(bind) <= len("{claims.}"):
			v.errorf(key, "must be {claims.NAME}, e.g. {claims.sub}")
		}
	}
	for i, s := range r.Scopes {
		if s == "" || strings.ContainsFunc(s, isSpaceOrControl) {
			v.errorf(fmt.Sprintf("%s.scopes[%d]", p, i), "must be one word without spaces: list each scope on its own")
		}
	}
	for _, name := range sortedKeys(r.Claims) {
		key := join(p+".claims", name)
		switch {
		case name == "":
			v.errorf(key, "a claim needs a name")
		case len(r.Claims[name]) == 0:
			v.errorf(key, "lists no accepted value, so every request would get 403: list at least one")
		}
	}
}

func (v *validator) composites() {
	apis := map[string]bool{}
	for _, a := range v.c.APIs {
		apis[a.Path] = true
	}
	seen := map[string]int{}
	for i, c := range v.c.Composites {
		p := v.at(fmt.Sprintf("composites[%d]", i))
		if v.localPath(p+".path", c.Path, "/bff/dashboard") && v.notReserved(p+".path", c.Path) {
			if c.Path == v.c.OIDC.CallbackPath {
				v.errorf(p+".path", "is oidc.callback_path: choose another path")
			}
		}
		if j, ok := seen[c.Path]; ok && c.Path != "" {
			v.errorf(p+".path", "repeats %s.path: each path may appear once", v.at(fmt.Sprintf("composites[%d]", j)))
		} else {
			seen[c.Path] = i
		}
		if len(c.Parts) == 0 {
			v.errorf(p+".parts", "at least one part is required: e.g. parts: {me: {api: /api/users/, path: me}}")
		}
		for _, name := range sortedKeys(c.Parts) {
			v.part(join(p+".parts", name), name, c.Parts[name], apis)
		}
		for _, name := range sortedKeys(c.Profiles) {
			v.profile(join(p+".profiles", name), c.Profiles[name], c.Parts)
		}
		if _, ok := c.Profiles[c.DefaultProfile]; c.DefaultProfile != "" && !ok {
			v.errorf(p+".default_profile", "%q names no profile of this composite", c.DefaultProfile)
		}
		if c.Require != nil {
			v.require(p+".require", c.Require, c.Path)
		}
		if c.Deadline < 0 {
			v.errorf(p+".deadline", "must not be negative: write e.g. 10s")
		}
	}
}

func (v *validator) part(p, name string, pt Part, apis map[string]bool) {
	if name == "_meta" {
		v.errorf(p, "_meta is where the response lists failed parts: rename the part")
	}
	switch {
	case pt.API == "" && pt.Upstream != "":
		if u, err := url.Parse(pt.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errorf(p+".upstream", "%s is not an absolute http(s) URL: write e.g. http://users.internal:8080/", v.quote(p+".upstream", pt.Upstream))
		}
		switch pt.Token {
		case TokenUser, TokenClient, TokenUserOrClient, TokenUserOrNone, TokenNone:
		default:
			v.errorf(p+".token", "a part with its own upstream needs token: user, client, user_or_client, user_or_none or none")
		}
	case pt.API != "" && (pt.Upstream != "" || pt.Token != ""):
		v.errorf(p+".api", "set either api, or upstream with token, not both")
	case pt.API == "":
		v.errorf(p+".api", "required: the apis[].path whose upstream and token mode this part uses (or upstream with token)")
	case !apis[pt.API] && apis[pt.API+"/"]:
		v.errorf(p+".api", "names no apis[].path: did you mean %q?", pt.API+"/")
	case !apis[pt.API]:
		v.errorf(p+".api", "%s names no apis[].path: use one of the paths under apis", v.quote(p+".api", pt.API))
	}
	if strings.Contains(pt.Path, "://") || strings.HasPrefix(pt.Path, "//") || hasDotSegment(strings.SplitN(pt.Path, "?", 2)[0]) {
		v.errorf(p+".path", "must stay under the API's upstream: a relative path without scheme, // or .. segments")
	}
	if pt.Timeout < 0 {
		v.errorf(p+".timeout", "must not be negative: write e.g. 2s, or 0 for the composite's deadline only")
	}
}

func (v *validator) profile(p string, pr Profile, parts map[string]Part) {
	for _, l := range []struct {
		key   string
		paths []string
	}{{p + ".allow", pr.Allow}, {p + ".deny", pr.Deny}} {
		for i, path := range l.paths {
			key := fmt.Sprintf("%s[%d]", l.key, i)
			first, _, _ := strings.Cut(path, ".")
			switch {
			case path == "" || slices.Contains(strings.Split(path, "."), ""):
				v.errorf(key, "must be a dot path without empty segments, e.g. orders.items.id")
			case first != "_meta" && len(parts) > 0:
				if _, ok := parts[first]; !ok {
					v.warnf(key, "starts with %q, which is no part of this composite: start with a part name", first)
				}
			}
		}
	}
}

func (v *validator) trustedProxies() {
	for i, s := range v.c.TrustedProxies {
		key := fmt.Sprintf("trusted_proxies[%d]", i)
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			v.errorf(key, "%s is neither a CIDR nor an IP address: write e.g. 10.0.0.0/8 or 192.0.2.7", v.quote(key, s))
		case pfx.Bits() == 0:
			v.warnf(key, "trusts X-Forwarded-* headers from every address: list the proxies' own networks")
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
