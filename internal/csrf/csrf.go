// Package csrf guards state-changing and data-reading endpoints from
// cross-site use: the custom-header check every API call and /bff/user must
// pass (a browser sends a custom header cross-origin only after a CORS
// preflight Cloakroom never grants), and the security headers every response
// carries.
package csrf

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// Defaults for the header check; Duende.BFF SPAs send exactly these.
const (
	DefaultHeader = "X-CSRF"
	DefaultValue  = "1"
)

// Checker checks the anti-forgery header.
type Checker struct {
	header string
	value  []byte
	// OnReject, when set, is told of each refused request.
	OnReject func()
}

// New returns a Checker for header: value (defaults when empty).
func New(header, value string) *Checker {
	if header == "" {
		header = DefaultHeader
	}
	if value == "" {
		value = DefaultValue
	}
	return &Checker{header: http.CanonicalHeaderKey(header), value: []byte(value)}
}

// Header is the header's canonical name.
func (c *Checker) Header() string { return c.header }

// OK reports whether r carries the header with the configured value.
func (c *Checker) OK(r *http.Request) bool {
	v := r.Header[c.header]
	return len(v) == 1 && subtle.ConstantTimeCompare([]byte(v[0]), c.value) == 1
}

// Require answers 401 with an empty body (what Duende.BFF SPAs expect) when
// the header is missing or wrong; next is not called.
func (c *Checker) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.OK(r) {
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SecurityHeaders sets the headers every response carries. HSTS only when
// the public origin is https.
func SecurityHeaders(hsts bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = nosniff
		h["Referrer-Policy"] = noReferrer
		h["X-Frame-Options"] = deny
		h["Cross-Origin-Opener-Policy"] = coopSameOrigin
		if hsts {
			h["Strict-Transport-Security"] = hstsValue
		}
		next.ServeHTTP(w, r)
	})
}

// Header values shared by every response. net/http and the gateway only
// ever replace a header's slice, never write into it, so sharing is safe
// and saves an allocation per header per response.
var (
	nosniff        = []string{"nosniff"}
	noReferrer     = []string{"no-referrer"}
	deny           = []string{"DENY"}
	coopSameOrigin = []string{"same-origin"}
	hstsValue      = []string{"max-age=63072000; includeSubDomains"}
)

// RequireAPI is Require for API routes. With allowHeaderless, requests
// that cannot carry a custom header (WebSocket upgrades, EventSource,
// downloads and other navigations) are admitted when the browser says they
// come from publicOrigin itself: Sec-Fetch-Site: same-origin, or (for
// WebSockets, whose handshake always has one) Origin equal to it.
func (c *Checker) RequireAPI(publicOrigin string, allowHeaderless bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := c.OK(r)
		if !ok && allowHeaderless {
			ok = sameOrigin(r, publicOrigin)
		}
		if !ok {
			if c.OnReject != nil {
				c.OnReject()
			}
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func sameOrigin(r *http.Request, publicOrigin string) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return o == publicOrigin
	}
	if isWebSocket(r) {
		return false
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		httpHeaderHasToken(r.Header.Values("Connection"), "upgrade")
}

func httpHeaderHasToken(vals []string, tok string) bool {
	for _, v := range vals {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), tok) {
				return true
			}
		}
	}
	return false
}
