// Package config reads cloakroom.yaml: ${VAR} and ${VAR:-default} expansion,
// strict decoding (unknown keys are errors), defaults, and Validate, which
// lists every problem with its line. Nothing below internal/server imports it.
//
// Relative paths (frontend.dir, oidc.client_secret_file,
// oidc.private_key_file, the files of apis[].tls, a file: session store)
// are relative to the working directory of the process, not to the file.
package config

import (
	"encoding/base64"
	"strings"
	"time"
)

// Token modes of an API route (API.Token).
const (
	TokenUser         = "user"           // the user's access token; no session → 401
	TokenClient       = "client"         // the gateway's own client-credentials token
	TokenUserOrClient = "user_or_client" // the user's if signed in, else the gateway's
	TokenUserOrNone   = "user_or_none"   // the user's if signed in, else no token
	TokenNone         = "none"           // never a token
	TokenExchange     = "exchange"       // the user's token traded for one scoped to the API (RFC 8693)
)

// Client authentication methods at the token endpoint (OIDC.ClientAuth).
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
	PrivateKeyJWT     = "private_key_jwt"
	// TLSClientAuth and SelfSignedTLSClientAuth authenticate by the client
	// certificate (RFC 8705 §2): oidc.client_certificate_file and
	// oidc.client_certificate_key_file.
	TLSClientAuth           = "tls_client_auth"
	SelfSignedTLSClientAuth = "self_signed_tls_client_auth"
)

// PAR modes (OIDC.PAR) and the profile (OIDC.Profile).
const (
	PARAuto      = "auto"
	PARRequired  = "required"
	PAROff       = "off"
	ProfileFAPI2 = "fapi2"
)

// Config is the whole validated file. Durations are parsed once here.
// A Config made in code should start from Default and be checked with
// Validate.
type Config struct {
	// Listen is the gateway's host:port. Default ":8080".
	Listen string `yaml:"listen"`
	// PublicURL is the origin the browser sees (scheme://host[:port], path
	// empty or "/"). Required; plain http only for localhost, 127.0.0.1, ::1.
	PublicURL string `yaml:"public_url"`
	// AdminListen is the host:port of /metrics, /healthz, /readyz and the
	// session admin API. Default empty: off.
	AdminListen string `yaml:"admin_listen"`
	// AdminToken is the bearer token the session admin API requires (at
	// least 32 bytes), or read from AdminTokenFile. Without one the
	// session admin API is off; /metrics, /healthz and /readyz need none.
	AdminToken     string `yaml:"admin_token"`
	AdminTokenFile string `yaml:"admin_token_file"`
	// LogLevel is debug, info (default: one access-log line per request),
	// warn or error.
	LogLevel string `yaml:"log_level"`
	// TrustedProxies are CIDRs or bare IPs whose X-Forwarded-* headers are
	// believed. Default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ShutdownDelay is how long, after SIGTERM, the gateway keeps
	// accepting and serving on listen while /readyz already answers 503,
	// so that load balancers take it out before it stops accepting; then
	// in-flight requests drain. A second signal ends the delay early.
	// Default 0: drain at once (Kubernetes' preStop sleep, or no load
	// balancer at all). At most 5m.
	ShutdownDelay time.Duration `yaml:"shutdown_delay"`
	// TLS, when set, makes the gateway terminate TLS itself on listen:
	// HTTPS with HTTP/2 (see TLS). Default nil: plain HTTP, TLS ends in
	// front of the gateway.
	TLS *TLS `yaml:"tls"`

	OIDC       OIDC        `yaml:"oidc"`
	Session    Session     `yaml:"session"`
	CSRF       CSRF        `yaml:"csrf"`
	CORS       CORS        `yaml:"cors"`
	Frontend   Frontend    `yaml:"frontend"`
	APIs       []API       `yaml:"apis"`
	Composites []Composite `yaml:"composites"`
	RateLimit  RateLimit   `yaml:"rate_limit"`

	// Frontends, when the file has frontends:, are the frontends this
	// gateway serves, each merged over the top level (see FrontendSpec
	// and Apps). The top level is then their defaults and shared routes,
	// not a frontend itself: public_url is refused there. Default nil: the
	// top level is the one frontend.
	Frontends []FrontendSpec `yaml:"frontends"`

	// meta is what Parse learnt from the file: lines, which values came
	// from the environment, warnings. Nil for a Config made in code.
	meta *meta
}

// OIDC configures the confidential client.
type OIDC struct {
	// Issuer is the IdP's issuer; discovery is at Issuer +
	// "/.well-known/openid-configuration". Required; https, or http for
	// localhost.
	Issuer string `yaml:"issuer"`
	// ClientID is required.
	ClientID string `yaml:"client_id"`
	// ClientSecret is the client secret. Exactly one of ClientSecret and
	// ClientSecretFile is required unless ClientAuth is private_key_jwt.
	// Load fills it from ClientSecretFile.
	ClientSecret string `yaml:"client_secret"`
	// ClientSecretFile names a file holding the secret; Load reads it into
	// ClientSecret, trailing newlines trimmed.
	ClientSecretFile string `yaml:"client_secret_file"`
	// ClientAuth is client_secret_basic (default), client_secret_post,
	// private_key_jwt, tls_client_auth or self_signed_tls_client_auth.
	ClientAuth string `yaml:"client_auth"`
	// PrivateKeyFile is the key of private_key_jwt, required with it: PEM
	// (PKCS#8, PKCS#1, SEC 1) or a JWK or JWKS file (the first key signs,
	// all public halves are served at /bff/jwks); RSA of 2048 bits or more
	// (PS256) or EC P-256 (ES256).
	PrivateKeyFile string `yaml:"private_key_file"`
	// ClientCertificateFile is the gateway's client certificate (PEM,
	// leaf first, then intermediates) and ClientCertificateKeyFile its
	// unencrypted PEM key. Both or neither; required by tls_client_auth and
	// self_signed_tls_client_auth (of this client or the service client).
	// When set, the certificate is presented to the provider (through its
	// mtls_endpoint_aliases) whatever client_auth is, so tokens can be
	// bound to it (RFC 8705 §3), and to https upstreams of API routes
	// whose tls sets no cert_file of its own.
	ClientCertificateFile    string `yaml:"client_certificate_file"`
	ClientCertificateKeyFile string `yaml:"client_certificate_key_file"`
	// ClientAssertionAudience is the aud of private_key_jwt assertions:
	// issuer (default when empty: SPEC, FAPI 2.0) or endpoint (the URL of
	// the endpoint called, which Okta and Entra ID require). The service
	// client uses the same.
	ClientAssertionAudience string `yaml:"client_assertion_audience"`
	// Scopes are requested at login and must include openid. Default
	// [openid, profile, email, offline_access].
	Scopes []string `yaml:"scopes"`
	// CallbackPath is the redirect URI's path. Default "/bff/callback".
	CallbackPath string `yaml:"callback_path"`
	// PostLogoutPath is where the IdP sends the browser after logout.
	// Default "/".
	PostLogoutPath string `yaml:"post_logout_path"`
	// AuthParams are extra authorization request parameters (audience,
	// acr_values, ...); the ones the gateway sets itself are refused.
	// Default none.
	AuthParams map[string]string `yaml:"auth_params"`
	// UserInfo, when true, fetches the userinfo endpoint with the access
	// token after login and after a refresh that brings a new ID token, and
	// merges its claims (same sub) into the session's. Default false.
	UserInfo bool `yaml:"userinfo"`
	// ClockSkew is the leeway on exp, iat and nbf of ID and logout tokens.
	// Default 60s; at most 5m.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// DPoP, when true, asks the provider for DPoP-bound access tokens
	// (RFC 9449): each session gets its own P-256 key, sealed inside it;
	// token and refresh requests carry proofs, and upstream calls carry
	// Authorization: DPoP with a fresh proof. Client-credentials and
	// exchanged tokens are bound to a key of the gateway process. Default
	// false.
	DPoP bool `yaml:"dpop"`
	// ServiceClient, when set, is the client that gets client-credentials
	// and exchanged tokens (token modes client, user_or_client, exchange).
	// Default nil: the main client does.
	ServiceClient *ServiceClient `yaml:"service_client"`
	// PAR is auto (default: pushed authorization requests, RFC 9126, when
	// discovery advertises them), required (start-up fails without them)
	// or off.
	PAR string `yaml:"par"`
	// Profile is "" (default) or fapi2: check and serve refuse a
	// configuration that is not FAPI 2.0 Security Profile conformant (see
	// validate_fapi2.go), and discovery a provider that is not.
	Profile string `yaml:"profile"`
}

// ServiceClient is a second client at the same provider for
// client-credentials and token-exchange grants, for providers that refuse
// one client holding both the authorization code and the
// client_credentials grant.
type ServiceClient struct {
	// ClientID is required.
	ClientID string `yaml:"client_id"`
	// ClientSecret or ClientSecretFile, as for the main client.
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// ClientAuth is as for the main client. Default client_secret_basic.
	// tls_client_auth and self_signed_tls_client_auth present the main
	// client's certificate (oidc.client_certificate_file): the gateway has
	// one client certificate.
	ClientAuth string `yaml:"client_auth"`
	// PrivateKeyFile is as for the main client; its public keys are served
	// at /bff/jwks too, after the main client's.
	PrivateKeyFile string `yaml:"private_key_file"`
}

// Session configures cookies, timeouts and the store.
type Session struct {
	// Store is memory | cookie | file:PATH | redis://... | rediss://...
	// Default "file:./cloakroom-sessions.db".
	Store string `yaml:"store"`
	// CookieName is the session cookie's name. Default
	// "__Host-Http-cloakroom" (DefaultCookieName); in frontends[], see
	// Config.Apps.
	CookieName string `yaml:"cookie_name"`
	// SameSite is strict (default) or lax.
	SameSite string `yaml:"same_site"`
	// IdleTimeout ends a session unused this long (sliding). Default 30m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// AbsoluteTimeout ends every session this long after login, at least
	// IdleTimeout. Default 12h.
	AbsoluteTimeout time.Duration `yaml:"absolute_timeout"`
	// Keys seal sessions: the first seals, all unseal (rotation). Each is
	// at least 32 bytes: raw text, or "base64:" and base64 (standard or
	// URL alphabet, padded or not). At
	// least one is required; see KeyBytes.
	Keys []string `yaml:"keys"`
	// RefreshBefore refreshes an access token this long before it expires.
	// Default 60s; 0 refreshes only expired tokens.
	RefreshBefore time.Duration `yaml:"refresh_before"`
	// MaxSessions bounds the memory store; the least recently written
	// session is evicted first. Default 100000; 0 means unbounded.
	MaxSessions int `yaml:"max_sessions"`
}

// keyPrefix marks a base64-encoded session key.
const keyPrefix = "base64:"

// KeyBytes returns the decoded Keys in order: a "base64:" key decoded, any
// other key's own bytes. A key that does not decode gives a nil entry, which
// Validate reports; never silently a shorter list.
func (s Session) KeyBytes() [][]byte {
	out := make([][]byte, len(s.Keys))
	for i, k := range s.Keys {
		b, ok := decodeKey(k)
		if ok {
			out[i] = b
		}
	}
	return out
}

func decodeKey(k string) ([]byte, bool) {
	enc, ok := strings.CutPrefix(k, keyPrefix)
	if !ok {
		return []byte(k), true
	}
	// Padded standard base64 is what openssl prints; the other alphabets
	// are taken too, so a key from another tool needs no re-encoding.
	for _, e := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := e.DecodeString(enc); err == nil {
			return b, true
		}
	}
	return nil, false
}

// CSRF names the header every API call and /bff/user must carry.
// Default {header: X-CSRF, value: "1"}.
type CSRF struct {
	Header string `yaml:"header"`
	Value  string `yaml:"value"`
}

// CORS lists the extra origins allowed to call with credentials. Default
// none: same origin only. "*" and "null" are refused.
type CORS struct {
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// Frontend serves the SPA from Dir, or proxies to DevServer; at most one.
// Default neither: only /bff/ and API routes are served.
type Frontend struct {
	// Dir is the built SPA; it must exist when the file is checked.
	Dir string `yaml:"dir"`
	// DevServer is an http(s) URL to proxy to while developing.
	DevServer string `yaml:"dev_server"`
	// CSP is index.html's Content-Security-Policy; {nonce} becomes the
	// response's nonce, which is also set on every <script> tag. Default:
	// a strict same-origin policy with nonce'd scripts.
	CSP string `yaml:"csp"`
}

// rate_limit.store values.
const (
	RateLimitLocal   = "local"
	RateLimitSession = "session"
)

// RateLimit bounds request rates per client; 0 turns a limit off.
type RateLimit struct {
	// APIPerSecond limits API and composite calls per session (per client
	// IP when anonymous); bursts of twice as many pass. Default 50.
	APIPerSecond int `yaml:"api_per_second"`
	// LoginPerMinute limits /bff/login and the callback per client IP;
	// bursts of as many pass. Default 30.
	LoginPerMinute int `yaml:"login_per_minute"`
	// Store keeps the counters: local (each instance its own) or session
	// (in the Redis session store, one budget shared by every instance;
	// requires a Redis session.store). Default "": local.
	Store string `yaml:"store"`
}

// API is one proxied route.
type API struct {
	// Path is the route's prefix, starting and ending with "/", outside
	// /bff/. Required; the longest prefix wins.
	Path string `yaml:"path"`
	// Upstream is the absolute http(s) URL the prefix maps to. Required.
	Upstream string `yaml:"upstream"`
	// Token is the token mode, one of the Token* constants. Default "user".
	Token string `yaml:"token"`
	// Scopes, Resource (RFC 8707) and Audience shape client and exchange
	// tokens; ignored, with a warning, for other modes. Exchange needs
	// Audience or Resource.
	Scopes   []string `yaml:"scopes"`
	Resource string   `yaml:"resource"`
	Audience string   `yaml:"audience"`
	// Require is the authorization policy; nil admits every caller the
	// token mode admits.
	Require *Require `yaml:"require"`
	// Timeout bounds one upstream call. Default 30s in the file; 0 means
	// no per-route limit.
	Timeout time.Duration `yaml:"timeout"`
	// Methods, when set, are the only HTTP methods the route accepts
	// (others get 405). Default: any.
	Methods []string `yaml:"methods"`
	// AllowHeaderless admits requests that cannot carry the CSRF header
	// (WebSocket upgrades, EventSource, download links and other
	// navigations) when they come from the public origin itself:
	// Sec-Fetch-Site same-origin, or an Origin equal to public_url.
	// Default false: every request needs the header.
	AllowHeaderless bool `yaml:"allow_headerless"`
	// MaxBodyBytes bounds a request body; larger ones get 413. Default
	// 10485760 (10 MiB); 0 means no limit.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// TLS is how the gateway meets an https upstream: its CA, the client
	// certificate it presents (mutual TLS), the name it checks. Composite
	// parts that name this route use it too. Default nil: the system
	// roots, no client certificate.
	TLS *UpstreamTLS `yaml:"tls"`
	// Mediate lets the SPA get from POST /bff/token an access token for
	// this route bound to its own DPoP key, and call the upstream itself
	// (the token-mediating mode). It needs oidc.dpop, token user and an
	// https upstream (http only for localhost); Scopes, Resource and
	// Audience narrow that token. The route is still proxied as well.
	// Default false.
	Mediate bool `yaml:"mediate"`
}

// UpstreamTLS names the files of an upstream's TLS settings. They must be
// readable PEM when the file is checked, and are read again by every
// reload (SIGHUP), which is how a renewed certificate is taken up.
type UpstreamTLS struct {
	// CAFile holds the CA certificates the upstream's certificate must
	// chain to. When set, they replace the system roots for this route.
	CAFile string `yaml:"ca_file"`
	// CertFile is the client certificate (leaf first, then intermediates)
	// and KeyFile its unencrypted private key, presented to the upstream.
	// Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the host name (or IP address) the upstream's
	// certificate must hold, and the SNI sent. Default the upstream URL's
	// host.
	ServerName string `yaml:"server_name"`
}

// TLS is the gateway's own HTTPS listener on listen. Its certificate
// comes from files (CertFile and KeyFile) or from an ACME CA (ACME), one
// of the two. Validate checks it in validate_listen_tls.go.
type TLS struct {
	// CertFile is the server certificate (PEM, leaf first, then
	// intermediates) and KeyFile its unencrypted PEM private key. Both or
	// neither. They must parse when the file is checked, and are read
	// again on SIGHUP and when either file changes (polled every few
	// seconds, which also sees a Kubernetes Secret's symlink swap); a pair
	// that does not parse then keeps the certificate served.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`

	// ACME, when set, obtains and renews the certificate automatically
	// from an ACME CA instead of files (see ACME).
	ACME *ACME `yaml:"acme"`

	// RedirectHTTP is the host:port of a plain HTTP listener that only
	// redirects to https on public_url's origin (and, with ACME, answers
	// HTTP-01 challenges). Default empty: none.
	RedirectHTTP string `yaml:"redirect_http"`
}

// ACME is tls.acme: certificates for the host of public_url (of every
// frontend's, with frontends) obtained from an ACME CA through TLS-ALPN-01
// on listen and HTTP-01 on redirect_http, kept in Storage and renewed
// ahead of expiry. Validate checks it in validate_acme.go.
type ACME struct {
	// Email is the ACME account's contact address, where the CA writes
	// about expiring certificates. Optional; check warns without it.
	Email string `yaml:"email"`
	// CA is the ACME directory URL. Default Let's Encrypt's production
	// CA; https (http only on localhost).
	CA string `yaml:"ca"`
	// CARoot is a PEM file of the root certificates that a private ACME
	// CA's own HTTPS chains to (step-ca, Pebble). Default: the system's
	// roots. An addition to the SPEC's keys.
	CARoot string `yaml:"ca_root"`
	// Storage is the directory for the ACME account, the certificates and
	// their keys, and the locks. Required. Instances that share it (a
	// shared volume) obtain each certificate once and serve the same.
	Storage string `yaml:"storage"`
	// AgreeTOS must be true: the CA's terms of service, which the operator
	// agrees to (Let's Encrypt requires it).
	AgreeTOS bool `yaml:"agree_tos"`
}

// Require is an authorization policy; a request that fails it gets 403.
// Every listed scope is needed; each claim needs one of its listed values.
type Require struct {
	// Path binds path parameters of a composite's path to claims, e.g.
	// {id: "{claims.sub}"} for /bff/users/{id}/dashboard: object-level
	// authorization before any upstream is called.
	Path   map[string]string   `yaml:"path"`
	Scopes []string            `yaml:"scopes"`
	Claims map[string][]string `yaml:"claims"`
}

// Composite is an aggregation endpoint: one GET, several upstream calls.
type Composite struct {
	// Path is the exact path answered, starting with "/". Required, unique.
	Path string `yaml:"path"`
	// Parts are the upstream calls by name, the keys of the response
	// object. At least one.
	Parts map[string]Part `yaml:"parts"`
	// Profiles shape the response per kind of frontend, chosen by
	// ?profile= or X-Client-Profile. Default none.
	Profiles map[string]Profile `yaml:"profiles"`
	// DefaultProfile applies when a request names none; "" leaves the
	// response unshaped.
	DefaultProfile string `yaml:"default_profile"`
	// Deadline bounds the whole call. Default 10s.
	Deadline time.Duration `yaml:"deadline"`
	// Require is an authorization policy for the whole composite (403).
	Require *Require `yaml:"require"`
}

// Part is one upstream call of a composite.
type Part struct {
	// API names an apis[].path; its upstream, token mode and policy are
	// used. Either API, or Upstream with Token.
	API string `yaml:"api"`
	// Upstream and Token give a part its own upstream and token mode.
	Upstream string `yaml:"upstream"`
	Token    string `yaml:"token"`
	// Path is appended to the API's upstream; it may hold {claims.X} and
	// {query.X} templates.
	Path string `yaml:"path"`
	// Required parts fail the whole call; others become null.
	Required bool `yaml:"required"`
	// Timeout bounds this part; 0 (default) leaves only the composite's
	// overall deadline.
	Timeout time.Duration `yaml:"timeout"`
}

// Profile shapes a composite's response for one kind of frontend by dot
// paths such as "orders.items.id".
type Profile struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
	// Map renames kept fields: "profile.name" -> "name".
	Map map[string]string `yaml:"map"`
}

// Default returns a Config holding every default; the required keys
// (public_url, oidc.issuer, oidc.client_id, a client secret, session.keys)
// are still empty.
func Default() *Config {
	return &Config{
		Listen: ":8080",
		OIDC: OIDC{
			ClientAuth:     ClientSecretBasic,
			Scopes:         []string{"openid", "profile", "email", "offline_access"},
			CallbackPath:   "/bff/callback",
			PostLogoutPath: "/",
			ClockSkew:      60 * time.Second,
			PAR:            PARAuto,
		},
		Session: Session{
			Store:           "file:./cloakroom-sessions.db",
			CookieName:      DefaultCookieName,
			SameSite:        "strict",
			IdleTimeout:     30 * time.Minute,
			AbsoluteTimeout: 12 * time.Hour,
			RefreshBefore:   60 * time.Second,
			MaxSessions:     100_000,
		},
		LogLevel:  "info",
		CSRF:      CSRF{Header: "X-CSRF", Value: "1"},
		RateLimit: RateLimit{APIPerSecond: 50, LoginPerMinute: 30},
	}
}

// setDefaults fills an apis[] entry before the file's values go over it.
func (a *API) setDefaults() {
	a.Token = TokenUser
	a.Timeout = 30 * time.Second
	a.MaxBodyBytes = 10 << 20
}

// Warnings returns what Load or Parse found worth saying that did not make
// it fail, or nil.
func (c *Config) Warnings() *Problems {
	if c.meta == nil || len(c.meta.warnings) == 0 {
		return nil
	}
	return &Problems{File: c.meta.file, List: c.meta.warnings}
}
