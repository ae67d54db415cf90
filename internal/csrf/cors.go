package csrf

import (
	"net/http"
	"slices"
	"strings"

	"github.com/cloakroom/cloakroom/internal/httpx"
)

// CORS lets the listed origins (and no others) call with credentials.
// Preflights are answered here and never reach an upstream; an origin not
// listed gets 403 to its preflight and no CORS headers on anything, so its
// browser withholds every response. Never "*", never a reflected or "null"
// origin.
func CORS(allowed []string, csrfHeader string, next http.Handler) http.Handler {
	if len(allowed) == 0 {
		// Same-origin only: preflights get 403, nothing is decorated.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isPreflight(r) {
				httpx.Problem(w, http.StatusForbidden, "cross-origin requests are not allowed")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	allowHeaders := strings.Join([]string{csrfHeader, "Content-Type", "Accept", "X-Client-Profile"}, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		ok := origin != "" && origin != "null" && slices.Contains(allowed, origin)
		h := w.Header()
		if origin != "" {
			h.Add("Vary", "Origin")
		}
		if isPreflight(r) {
			if !ok {
				httpx.Problem(w, http.StatusForbidden, "origin not allowed")
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", allowHeaders)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		next.ServeHTTP(w, r)
	})
}

func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}

// CrossOrigin refuses unsafe (non-GET/HEAD/OPTIONS) cross-origin browser
// requests with net/http's CrossOriginProtection (Fetch Metadata, then
// Origin against Host), trusting the listed origins. Requests without
// either header — servers, such as a provider's back-channel logout —
// pass.
func CrossOrigin(trusted []string, next http.Handler) (http.Handler, error) {
	cop := http.NewCrossOriginProtection()
	for _, o := range trusted {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, err
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.Problem(w, http.StatusForbidden, "cross-origin request refused")
	}))
	return cop.Handler(next), nil
}
