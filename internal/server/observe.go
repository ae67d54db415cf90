package server

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/metrics"
)

// named marks requests handled by h as route name. Route names come from
// configuration, never from request paths, so label sets stay bounded.
func named(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info := httpx.InfoOf(r.Context()); info != nil {
			info.Route = name
		}
		h.ServeHTTP(w, r)
	})
}

// observe gives each request its id (X-Request-Id on the response, and the
// one httpx.Info every inner layer fills in), matches it to its frontend
// and has that serve it, then writes one access-log line and the request
// metrics, both with the frontend's name. The log line names the session by a prefix of its handle (a
// keyed hash of the ticket), never the ticket, and the path without its
// query (which may hold an authorization code). lb counts the requests
// that say a proxy trusted_proxies does not list is in front (lbwarn.go).
func observe(m *metrics.Metrics, set *frontendSet, log *slog.Logger, accessOut io.Writer, lb *lbWarning) http.Handler {
	access := accessLog{w: accessOut, log: log}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lb.observe(r)
		info := &httpx.Info{RequestID: newRequestID(), Route: "other"}
		w.Header()["X-Request-Id"] = []string{info.RequestID}
		sw := &statusWriter{ResponseWriter: w}
		f, known := set.match(r)
		if f != nil {
			info.Frontend = f.name
		}
		set.serve(sw, r.WithContext(httpx.WithInfo(r.Context(), info)), f, known)
		end := time.Now()
		d := end.Sub(start)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		m.Observe(info.Frontend, info.Route, r.Method, code, d)
		if !log.Enabled(r.Context(), slog.LevelInfo) {
			return // access logs off: build nothing
		}
		e := accessEntry{at: end, requestID: info.RequestID, frontend: info.Frontend, route: info.Route, method: r.Method, path: r.URL.Path, status: code, duration: d}
		handle := info.Session // set by whichever layer loaded the session
		if handle == "" && f != nil {
			if t := f.sessions.Ticket(r); t != "" {
				handle = f.sessions.HandleOf(t)
			}
		}
		if handle != "" {
			e.session = handle[:min(len(handle), 14)]
		}
		access.write(r.Context(), &e)
	})
}

// newRequestID is 16 hex digits from crypto/rand.
func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status code; Unwrap keeps Flush and Hijack
// reachable through http.ResponseController (streams, WebSockets).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
