package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// payload is the upstream's answer to every API call: about 200 bytes of JSON.
const payload = `{"orders":[{"id":1001,"status":"shipped","total":12.5,"currency":"EUR"},` +
	`{"id":1002,"status":"pending","total":99.0,"currency":"EUR"}],"page":{"size":2,"next":null},"served_by":"upstream"}`

// probeSuffix marks the verification request: the upstream records the
// headers of requests whose path ends with it, and only of those.
const probeSuffix = "/probe"

// statsPath answers the upstream's counters; the load never calls it.
const statsPath = "/_stats"

// upstreamStats is what statsPath reports.
type upstreamStats struct {
	Requests            int64  `json:"requests"` // every request but statsPath
	Probes              int64  `json:"probes"`
	ProbeAuthorization  string `json:"probe_authorization"`
	ProbeCookie         bool   `json:"probe_cookie"`
	ProbeCSRF           bool   `json:"probe_csrf"`
	ProbeForwardedHost  string `json:"probe_forwarded_host"`
	ProbeForwardedProto string `json:"probe_forwarded_proto"`
}

type upstream struct {
	requests atomic.Int64
	mu       sync.Mutex
	probe    upstreamStats // Probe* fields only
}

var (
	jsonType   = []string{"application/json"}
	payloadLen = []string{fmt.Sprint(len(payload))}
)

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == statsPath {
		s := upstreamStats{Requests: u.requests.Load()}
		u.mu.Lock()
		p := u.probe
		u.mu.Unlock()
		s.Probes, s.ProbeAuthorization, s.ProbeCookie, s.ProbeCSRF = p.Probes, p.ProbeAuthorization, p.ProbeCookie, p.ProbeCSRF
		s.ProbeForwardedHost, s.ProbeForwardedProto = p.ProbeForwardedHost, p.ProbeForwardedProto
		w.Header()["Content-Type"] = jsonType
		json.NewEncoder(w).Encode(s)
		return
	}
	u.requests.Add(1)
	if strings.HasSuffix(r.URL.Path, probeSuffix) {
		u.mu.Lock()
		u.probe.Probes++
		u.probe.ProbeAuthorization = r.Header.Get("Authorization")
		u.probe.ProbeCookie = r.Header.Get("Cookie") != ""
		u.probe.ProbeCSRF = r.Header.Get("X-CSRF") != ""
		u.probe.ProbeForwardedHost = r.Header.Get("X-Forwarded-Host")
		u.probe.ProbeForwardedProto = r.Header.Get("X-Forwarded-Proto")
		u.mu.Unlock()
	}
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Content-Length"] = payloadLen
	io.WriteString(w, payload)
}

func serveUpstream(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return serveOn(ctx, *addr, &upstream{}, stdout, stderr)
}

func serveBareProxy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bareproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	up := fs.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:9000/")
	token := fs.String("token", "bench-fixed-token", "the bearer added to every request")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	target, err := url.Parse(*up)
	if err != nil || target.Scheme != "http" || target.Host == "" {
		fmt.Fprintf(stderr, "bareproxy: --upstream must be an http URL, got %q\n", *up)
		return 2
	}
	return serveOn(ctx, *addr, newBareProxy(target, *token), stdout, stderr)
}

// newBareProxy is the floor: httputil.ReverseProxy, SetURL and a fixed
// bearer, with the upstream transport and buffer pool Cloakroom uses
// (internal/proxy NewTransport and bufferPool, copied here so the
// baseline does not move when the gateway's code does). It sets no
// FlushInterval: small bodies with a known length are written at once.
func newBareProxy(target *url.URL, token string) http.Handler {
	bearer := "Bearer " + token
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", bearer)
		},
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second, // Cloakroom's default apis[].timeout
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          512,
			MaxIdleConnsPerHost:   128,
			ForceAttemptHTTP2:     true,
		},
		BufferPool: bufferPool{},
	}
}

// bufferPool recycles ReverseProxy's 32 KiB copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// serveOn serves h on addr with the server limits `cloakroom serve` uses,
// prints "listening ADDR" once it accepts, and stops when ctx ends.
func serveOn(ctx context.Context, addr string, h http.Handler, stdout, stderr io.Writer) int {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || (host != "127.0.0.1" && host != "::1" && host != "localhost") {
		fmt.Fprintf(stderr, "--addr must be a loopback host:port, got %q\n", addr)
		return 2
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(stderr, "", log.LstdFlags),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	select {
	case err := <-errc:
		fmt.Fprintln(stderr, err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintln(stderr, err)
	}
	return 0
}
