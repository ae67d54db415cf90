package tlsserve

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// redirect answers every request of the plain HTTP listener with a
// redirect to https, path and query kept: to the origin whose host the
// request names, or, for a Host that is none of the gateway's (or none at
// all), to the first origin, so that the listener can never be made to
// redirect elsewhere.
type redirect struct {
	origins atomic.Pointer[[]*url.URL]
}

func newRedirect(origins []string) *redirect {
	rd := &redirect{}
	rd.set(origins)
	return rd
}

func (rd *redirect) set(origins []string) {
	var list []*url.URL
	for _, s := range origins {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			list = append(list, &url.URL{Scheme: "https", Host: u.Host})
		}
	}
	rd.origins.Store(&list)
}

func (rd *redirect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	list := *rd.origins.Load()
	if len(list) == 0 {
		http.NotFound(w, r)
		return
	}
	host := strings.TrimSuffix(hostOnly(r.Host), ".")
	target := *list[0]
	for _, u := range list {
		if strings.EqualFold(u.Hostname(), host) {
			target = *u
			break
		}
	}
	target.Path = "/"
	if strings.HasPrefix(r.URL.Path, "/") {
		target.Path, target.RawPath, target.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	}
	code := http.StatusPermanentRedirect // 308 keeps the method and body
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		code = http.StatusMovedPermanently
	}
	w.Header().Set("Location", target.String())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write([]byte("use https\n"))
	}
}

// hostOnly is the host of a Host header, without its port.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// RedirectServer is the server of tls.redirect_http: every request is
// redirected to https on the gateway's origins (see SetOrigins), after the
// certificate source's own requests (ACME HTTP-01) are answered. Its
// requests are small, so its timeouts are short.
func (s *Server) RedirectServer() *http.Server {
	return &http.Server{
		Handler:           s.src.httpHandler(s.redirect),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}
