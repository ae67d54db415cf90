package demo

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Header names the demo API reports on.
const (
	headerAuthorization   = "Authorization"
	headerWWWAuthenticate = "WWW-Authenticate"
	headerCSRF            = "X-CSRF"
	headerXForwardedFor   = "X-Forwarded-For"
)

// Event stream shape of GET /time/stream.
const (
	streamEvents   = 3
	streamInterval = 200 * time.Millisecond
)

// maxForwardedHops bounds how many X-Forwarded-For entries are reported.
const maxForwardedHops = 16

// NewAPI returns the demo API handler. Every route needs a bearer access
// token that verify accepts (verify returns the token's claims); otherwise
// the answer is 401 {"error":"invalid_token"} with WWW-Authenticate: Bearer.
//
//	GET /whoami       JSON about the caller: sub, aud, scope, expires_at, and
//	                  whether a Cookie or X-CSRF header reached the API (the
//	                  gateway should strip both) and the X-Forwarded-For chain.
//	GET /time/stream  text/event-stream of 3 "time" events, 200ms apart, then EOF.
//	GET /admin/overview  JSON for the admin console: sub, role, aud and
//	                  expires_at; 403 {"error":"insufficient_role"} unless the
//	                  token's role claim is AdminRole. The gateway's route
//	                  checks the same before it calls, so the API is the second
//	                  line, not the only one.
//
// Any other path is 404. No response ever contains the token or the value of a
// header that could carry one.
func NewAPI(verify func(token string) (map[string]any, error)) http.Handler {
	a := &api{verify: verify, now: time.Now}
	mux := http.NewServeMux()
	mux.Handle("GET /whoami", a.auth(a.whoami))
	mux.Handle("GET /time/stream", a.auth(a.stream))
	mux.Handle("GET /admin/overview", a.auth(a.adminOverview))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
	})
	return mux
}

type api struct {
	verify func(token string) (map[string]any, error)
	now    func() time.Time
}

type claimsHandler func(w http.ResponseWriter, r *http.Request, claims map[string]any)

// auth admits requests with a bearer token verify accepts. The verifier's
// error is not sent: it may quote the token.
func (a *api) auth(next claimsHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		if !ok {
			unauthorized(w, "Bearer")
			return
		}
		claims, err := a.verify(token)
		if err != nil || claims == nil {
			unauthorized(w, `Bearer error="invalid_token"`)
			return
		}
		next(w, r, claims)
	})
}

func (a *api) whoami(w http.ResponseWriter, r *http.Request, claims map[string]any) {
	writeJSON(w, http.StatusOK, map[string]any{
		"message":              "hello from the demo API",
		"sub":                  claims["sub"],
		"aud":                  claims["aud"],
		"scope":                claims["scope"],
		"expires_at":           expiresAt(claims["exp"]),
		"token_valid":          true,
		"cookie_received":      r.Header.Get("Cookie") != "",
		"csrf_header_received": len(r.Header.Values(headerCSRF)) > 0,
		"forwarded_for":        forwardedFor(r.Header.Values(headerXForwardedFor)),
	})
}

// AdminRole is the role claim's value that the admin API admits.
const AdminRole = "admin"

func (a *api) adminOverview(w http.ResponseWriter, r *http.Request, claims map[string]any) {
	if claims["role"] != AdminRole {
		w.Header().Set(headerWWWAuthenticate, `Bearer error="insufficient_scope"`)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_role"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"message":    "hello from the admin API",
		"sub":        claims["sub"],
		"role":       claims["role"],
		"aud":        claims["aud"],
		"expires_at": expiresAt(claims["exp"]),
	})
}

func (a *api) stream(w http.ResponseWriter, r *http.Request, _ map[string]any) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	ticker := time.NewTicker(streamInterval)
	defer ticker.Stop()
	for i := 1; i <= streamEvents; i++ {
		if i > 1 {
			select {
			case <-r.Context().Done():
				return
			case <-ticker.C:
			}
		}
		data, _ := json.Marshal(map[string]any{"n": i, "time": a.now().UTC().Format(time.RFC3339Nano)})
		if _, err := fmt.Fprintf(w, "id: %d\nevent: time\ndata: %s\n\n", i, data); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// bearerToken returns the token of an "Authorization: Bearer" header; the
// scheme is case-insensitive (RFC 9110).
func bearerToken(r *http.Request) (string, bool) {
	v := r.Header.Values(headerAuthorization)
	if len(v) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(v[0], " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

func unauthorized(w http.ResponseWriter, challenge string) {
	w.Header().Set(headerWWWAuthenticate, challenge)
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
}

// expiresAt renders a JWT "exp" (seconds since the epoch, as any JSON number
// type a verifier may produce) as RFC 3339, or nil when absent or odd.
func expiresAt(exp any) any {
	var sec float64
	switch v := exp.(type) {
	case float64:
		sec = v
	case int64:
		sec = float64(v)
	case int:
		sec = float64(v)
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return nil
		}
		sec = f
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	default:
		return nil
	}
	if math.IsNaN(sec) || math.IsInf(sec, 0) || sec <= 0 {
		return nil
	}
	return time.Unix(int64(sec), 0).UTC().Format(time.RFC3339)
}

// forwardedFor reports the X-Forwarded-For chain keeping only entries that
// are IP addresses, so that a client cannot make the API echo a token by
// smuggling it into the header.
func forwardedFor(values []string) string {
	var hops []string
	for _, v := range values {
		for hop := range strings.SplitSeq(v, ",") {
			if len(hops) == maxForwardedHops {
				return strings.Join(hops, ", ")
			}
			if addr, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil {
				hops = append(hops, addr.String())
			}
		}
	}
	return strings.Join(hops, ", ")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
