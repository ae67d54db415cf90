package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/metrics"
	"github.com/cloakroom/cloakroom/internal/session"
)

// reqInfo is filled in by the handler that answers, for the access log and
// metrics. Route names come from configuration, never from request paths,
// so label sets stay bounded.
type reqInfo struct {
	route string
}

type infoKey struct{}

// named marks requests handled by h as route name.
func named(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
			info.route = name
		}
		h.ServeHTTP(w, r)
	})
}

// observe writes one access-log line and the request metrics per request.
// The log line names the session by a prefix of its handle (a keyed hash
// of the ticket), never the ticket, and the path without its query (which
// may hold an authorization code).
func observe(m *metrics.Metrics, sessions *session.Manager, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{route: "other"}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
		d := time.Since(start)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		m.Observe(info.route, r.Method, code, d)
		if !log.Enabled(r.Context(), slog.LevelInfo) {
			return // access logs off: build nothing
		}
		attrs := []slog.Attr{
			slog.String("request_id", httpx.RequestID(r.Context())),
			slog.String("route", info.route),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", code),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		}
		if t := sessions.Ticket(r); t != "" {
			attrs = append(attrs, slog.String("session", sessions.HandleOf(t)[:14]))
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
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
