// Package httpx holds the small HTTP pieces every handler shares: an error
// type that carries a status code and a public message, an adapter that turns
// error-returning handlers into http.Handlers, and RFC 9457 problem writers.
//
// Only Msg is ever sent to the client. Err is logged and never echoed, so an
// identity provider's body, a token or a store error can not leak through it.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
)

// Error is an error with an HTTP status. Msg is shown to the client; Err is
// logged only. A zero Msg sends the status text.
type Error struct {
	Code int
	Msg  string
	Err  error
	// Empty sends no body at all (Duende-compatible 401s).
	Empty bool
}

func (e Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e Error) Unwrap() error { return e.Err }

// HandlerFunc is an http.HandlerFunc that may fail.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts h: an Error is answered with its code and message, any other
// error with 500 "internal error"; both are logged with the request's logger.
func Handle(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, log, err)
		}
	})
}

// WriteError answers r with err as Handle does.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var he Error
	if !errors.As(err, &he) {
		he = Error{Code: http.StatusInternalServerError, Msg: "internal error", Err: err}
	}
	level := slog.LevelInfo
	if he.Code >= 500 {
		level = slog.LevelError
	}
	if log != nil {
		log.LogAttrs(r.Context(), level, "request failed",
			slog.String("request_id", RequestID(r.Context())),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", he.Code),
			slog.String("error", err.Error()))
	}
	if he.Empty {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(he.Code)
		return
	}
	msg := he.Msg
	if msg == "" {
		msg = http.StatusText(he.Code)
	}
	Problem(w, he.Code, msg)
}

// Problem writes an RFC 9457 problem document.
func Problem(w http.ResponseWriter, code int, detail string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: http.StatusText(code), Status: code, Detail: detail})
}

type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// JSON writes v as a non-cacheable JSON response.
func JSON(w http.ResponseWriter, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, err = w.Write(b)
	return err
}

// Info is what the layers handling one request tell each other: the
// request id, the frontend the request was matched to and the configured
// route that answered (for logs and metrics, never a raw path, so label
// sets stay bounded) and the bearer the proxy forwards. The outermost layer puts one Info in the context; the others
// fill it in place, so the request is not copied once per fact.
//
// Bearer is a secret: it is never logged and lives only as long as the
// request.
type Info struct {
	RequestID string
	// Frontend is the configured name of the request's frontend: "" for
	// the implicit one of a configuration without frontends:, and for a
	// request matched to none.
	Frontend string
	Route    string
	// Session is the handle (store key) of the session the request
	// loaded, if it loaded one: safe to log.
	Session string
	Bearer  string
	// DPoP, when set, is the key Bearer is bound to (RFC 9449): the proxy
	// sends Bearer as a DPoP token with proofs signed by it. A secret too.
	DPoP any
}

type infoKey struct{}

// WithInfo returns ctx carrying info.
func WithInfo(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// InfoOf returns the Info in ctx, or nil.
func InfoOf(ctx context.Context) *Info {
	info, _ := ctx.Value(infoKey{}).(*Info)
	return info
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	if info := InfoOf(ctx); info != nil {
		return info.RequestID
	}
	return ""
}
