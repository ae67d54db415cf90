// Package proxy forwards API calls to upstream services: one
// httputil.ReverseProxy per route, the browser's cookie and CSRF header out,
// the right bearer token in. It knows nothing of sessions or OAuth; it gets
// tokens through the one-method Bearer interface.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
)

// Bearer supplies the access token for a request. "" with a nil error
// forwards the request without one; an httpx.Error is sent as it is (401
// when no token can be had), and the upstream is not called.
type Bearer interface {
	Token(r *http.Request) (string, error)
}

// Route is one API route: requests under Prefix go to Upstream with the
// prefix replaced by Upstream's path.
type Route struct {
	// Prefix starts and ends with "/"; it may hold parameter segments
	// ({id}), which match any one segment and are stripped like the rest.
	Prefix   string
	Upstream *url.URL
	Bearer   Bearer
	// Timeout bounds the wait for the upstream's response headers (not the
	// body, so streams may run long); zero means no limit.
	Timeout time.Duration
	// Methods, when set, are the only methods accepted (else 405).
	Methods []string
	// MaxBodyBytes bounds the request body (else 413); zero means none.
	MaxBodyBytes int64
	// TLS, when set, is the route's client TLS configuration (LoadTLS):
	// its roots, client certificate and server name. Nil means the system
	// roots and no client certificate.
	TLS *tls.Config
}

// Options are shared by every route.
type Options struct {
	// PublicURL is the origin the browser sees; X-Forwarded-Host/Proto come
	// from it and WebSocket upgrades must come from it.
	PublicURL *url.URL
	// CSRFHeader is removed before forwarding.
	CSRFHeader string
	// SessionCookie: upstream Set-Cookie headers for it are dropped.
	SessionCookie string
	// TrustedProxies may send X-Forwarded-For that is kept.
	TrustedProxies []netip.Prefix
	// OnUpstream, when set, is told each upstream call's time to response
	// headers, by route prefix.
	OnUpstream func(prefix string, d time.Duration)
	// WrapTransport, when set, wraps each route's transport (tracing).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// DPoP, when set, keeps the upstreams' DPoP nonces for routes whose
	// Bearer is a DPoPBearer: their DPoP-bound tokens go with proofs (see
	// dpop.go). Nil: every token goes as a bearer token.
	DPoP DPoPNonces
	// Now is the clock of DPoP proofs; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// New returns the handler for route rt. The handler has the method
// CloseIdleConnections, as http.Client has: it closes the idle
// connections of the route's transport, which the server does for the
// routes a reload replaced, so no connection opened with an old client
// certificate waits for reuse.
func New(rt Route, o Options) http.Handler {
	h := &handler{rt: rt, o: o, log: o.Logger,
		csrfKey: http.CanonicalHeaderKey(o.CSRFHeader),
		fwdHost: []string{o.PublicURL.Host}, fwdProto: []string{o.PublicURL.Scheme}}
	h.transport = NewTransport(rt.Timeout)
	if rt.TLS != nil {
		h.transport.TLSClientConfig = rt.TLS.Clone() // the transport adds its ALPN protocols to it
	}
	var tr http.RoundTripper = timed{h.transport, rt.Prefix, o.OnUpstream}
	if o.WrapTransport != nil {
		tr = o.WrapTransport(tr)
	}
	if db, ok := rt.Bearer.(DPoPBearer); ok && o.DPoP != nil {
		h.dpop = db
		now := o.Now
		if now == nil {
			now = time.Now
		}
		tr = &dpopTransport{next: tr, nonces: o.DPoP, origin: rt.Upstream.Scheme + "://" + rt.Upstream.Host, now: now}
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      tr,
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.proxyError,
		BufferPool:     BufferPool{},
		// SSE and unknown-length bodies are flushed after every write by
		// ReverseProxy itself. Bodies of known length are copied as they
		// arrive through the server's write buffer, with no flush timer
		// per response: a timer costs on every call and helps only a
		// known-length body that trickles.
		FlushInterval: 0,
	}
	return h
}

// NewTransport returns the upstream transport: httpx.NewTransport with
// httpx.UpstreamIdlePerHost idle connections per upstream host.
func NewTransport(responseHeader time.Duration) *http.Transport {
	return httpx.NewTransport(responseHeader, httpx.UpstreamIdlePerHost)
}

type handler struct {
	rt        Route
	o         Options
	rp        *httputil.ReverseProxy
	transport *http.Transport
	dpop      DPoPBearer // rt.Bearer, when its tokens may be DPoP-bound
	log       *slog.Logger
	// Fixed at startup. Header slices are never modified in place by
	// net/http or by this package, only replaced, so every request can
	// share these.
	csrfKey           string // CSRFHeader, canonical
	fwdHost, fwdProto []string
}

// CloseIdleConnections closes the route's idle upstream connections.
func (h *handler) CloseIdleConnections() { h.transport.CloseIdleConnections() }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := checkPath(r.URL); err != nil {
		httpx.WriteError(w, r, h.log, httpx.Error{Code: http.StatusBadRequest, Msg: err.Error()})
		return
	}
	if len(h.rt.Methods) > 0 && !slices.Contains(h.rt.Methods, r.Method) {
		w.Header().Set("Allow", strings.Join(h.rt.Methods, ", "))
		httpx.WriteError(w, r, h.log, httpx.Error{Code: http.StatusMethodNotAllowed, Msg: "method not allowed on this route"})
		return
	}
	if max := h.rt.MaxBodyBytes; max > 0 {
		if r.ContentLength > max {
			httpx.WriteError(w, r, h.log, httpx.Error{Code: http.StatusRequestEntityTooLarge, Msg: "request body too large"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
	}
	w.Header()["X-Content-Type-Options"] = nosniff
	var (
		tok string
		key DPoPSigner
		err error
	)
	if h.dpop != nil {
		tok, key, err = h.dpop.DPoPToken(r)
	} else {
		tok, err = h.rt.Bearer.Token(r)
	}
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	// The bearer (and its DPoP key) reach rewrite and the transport
	// through the request's httpx.Info, which the gateway's outer layer
	// has already put in the context.
	if info := httpx.InfoOf(r.Context()); info != nil {
		info.Bearer = tok
		if key != nil {
			info.DPoP = key
		}
	} else {
		info := &httpx.Info{Bearer: tok}
		if key != nil {
			info.DPoP = key
		}
		r = r.WithContext(httpx.WithInfo(r.Context(), info))
	}
	h.rp.ServeHTTP(w, r)
}

// checkPath refuses paths that could leave the route's base once an
// upstream decodes them: dot segments (also when percent-encoded, since
// r.URL.Path is already decoded), encoded slashes, backslashes and NULs,
// and what httpx.CheckDecodedPath refuses: bytes that are not valid UTF-8
// (the overlong %c0%ae) and escapes that survive the first decoding to
// become a dot, slash or backslash in a second one (%252e, %25%32%66).
// Ordinary paths pass without allocating.
func checkPath(u *url.URL) error {
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return errors.New("path must not contain dot segments")
		}
	}
	// A NUL shows only in Path: RawPath is empty when it is the default
	// encoding of Path, as "%00" is.
	if strings.ContainsAny(u.Path, "\\\x00") {
		return errors.New("path must not contain a backslash or NUL")
	}
	if encodedSlash(u.RawPath) {
		return errors.New("path must not contain encoded slashes")
	}
	return httpx.CheckDecodedPath(u.Path)
}

// encodedSlash reports whether raw holds %2F, in any case.
func encodedSlash(raw string) bool {
	for i := strings.IndexByte(raw, '%'); i >= 0 && i+2 < len(raw); {
		if raw[i+1] == '2' && (raw[i+2] == 'f' || raw[i+2] == 'F') {
			return true
		}
		j := strings.IndexByte(raw[i+1:], '%')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func (h *handler) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	// Strip the route prefix, then join onto the upstream's base path.
	out.URL.Path = h.strip(in.URL.Path)
	out.URL.RawPath = ""
	if in.URL.RawPath != "" {
		out.URL.RawPath = h.strip(in.URL.RawPath)
	}
	pr.SetURL(h.rt.Upstream)

	hd := out.Header
	delete(hd, "Cookie")
	delete(hd, h.csrfKey)
	delete(hd, "Authorization")
	stripSpoofable(hd)
	info := httpx.InfoOf(in.Context())
	if info != nil && info.Bearer != "" {
		if info.DPoP != nil {
			hd["Authorization"] = []string{dpopScheme + " " + info.Bearer} // the transport adds the proof
		} else {
			hd["Authorization"] = []string{"Bearer " + info.Bearer}
		}
	}
	delete(hd, headerDPoP) // only the transport's own proof goes
	// X-Forwarded-For: the client's address, after what a trusted proxy in
	// front already recorded (read from the inbound request: the outbound
	// copy has lost it with every other X-Forwarded-*).
	if client, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 && h.trusted(in.RemoteAddr) {
			client = strings.Join(prior, ", ") + ", " + client
		}
		hd["X-Forwarded-For"] = []string{client}
	}
	hd["X-Forwarded-Host"] = h.fwdHost
	hd["X-Forwarded-Proto"] = h.fwdProto
	if info != nil && info.RequestID != "" {
		hd["X-Request-Id"] = []string{info.RequestID}
	}
}

// strip removes the route's prefix from p: literally, or, when the prefix
// has parameters, as many whole segments as it has.
func (h *handler) strip(p string) string {
	if !strings.Contains(h.rt.Prefix, "{") {
		return strings.TrimPrefix(p, h.rt.Prefix)
	}
	slashes := strings.Count(h.rt.Prefix, "/")
	for i := range len(p) {
		if p[i] == '/' {
			if slashes--; slashes == 0 {
				return p[i+1:]
			}
		}
	}
	return ""
}

func (h *handler) trusted(remote string) bool {
	if len(h.o.TrustedProxies) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range h.o.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (h *handler) modifyResponse(resp *http.Response) error {
	hd := resp.Header
	if cs := hd.Values("Set-Cookie"); len(cs) > 0 {
		hd.Del("Set-Cookie")
		for _, c := range cs {
			name, _, _ := strings.Cut(c, "=")
			name = strings.TrimSpace(name)
			if name == h.o.SessionCookie || strings.HasPrefix(name, h.o.SessionCookie+".") || strings.HasPrefix(name, "__Host-cloakroom") {
				continue
			}
			hd.Add("Set-Cookie", c)
		}
	}
	for k := range hd {
		if strings.HasPrefix(k, "Access-Control-") {
			hd.Del(k)
		}
	}
	// nosniff is already on the response (ServeHTTP); the upstream's copy
	// would only repeat it.
	delete(hd, "X-Content-Type-Options")
	// An API answer is data: should a browser ever render one, it gets
	// no script, no plugins, no framing.
	hd["Content-Security-Policy"] = apiCSP
	return nil
}

var (
	nosniff = []string{"nosniff"}
	apiCSP  = []string{"default-src 'none'; frame-ancestors 'none'; sandbox"}
)

// proxyError maps upstream failures: timeout 504, client gone 499 (nothing
// written), else 502.
func (h *handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(r.Context().Err(), context.Canceled) {
		h.log.InfoContext(r.Context(), "client went away", "request_id", httpx.RequestID(r.Context()), "path", r.URL.Path)
		w.WriteHeader(499)
		return
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		httpx.WriteError(w, r, h.log, httpx.Error{Code: http.StatusRequestEntityTooLarge, Msg: "request body too large"})
		return
	}
	code, msg := http.StatusBadGateway, "the upstream service is unavailable"
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		code, msg = http.StatusGatewayTimeout, "the upstream service did not answer in time"
	}
	httpx.WriteError(w, r, h.log, httpx.Error{Code: code, Msg: msg, Err: fmt.Errorf("upstream %s: %w", h.rt.Upstream.Host, err)})
}

// timed reports each round trip's time to response headers.
type timed struct {
	rt     http.RoundTripper
	prefix string
	report func(string, time.Duration)
}

func (t timed) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.report == nil {
		return t.rt.RoundTrip(r)
	}
	start := time.Now()
	resp, err := t.rt.RoundTrip(r)
	t.report(t.prefix, time.Since(start))
	return resp, err
}
