package main

import (
	"bytes"
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
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloakroom/cloakroom/internal/gctune"
	"github.com/cloakroom/cloakroom/internal/proxy"
)

// payload is the upstream's small answer: about 200 bytes of JSON.
const payload = `{"orders":[{"id":1001,"status":"shipped","total":12.5,"currency":"EUR"},` +
	`{"id":1002,"status":"pending","total":99.0,"currency":"EUR"}],"page":{"size":2,"next":null},"served_by":"upstream"}`

// The upstream's paths, one per behaviour. Cloakroom's route /api/ maps to
// the upstream's /api/, so every target's requests arrive at the same path.
const (
	pathSmall = "/api/small" // payload
	pathSlow  = "/api/slow"  // payload, after slowDelay
	pathLarge = "/api/large" // largePayload
	pathPost  = "/api/post"  // reads the whole body, then payload
	pathSSE   = "/api/sse"   // sseEvents events, each flushed
)

const (
	slowDelay     = 10 * time.Millisecond
	sseEvents     = 20
	sseEventBytes = 100
	// holdHeader makes the event stream pause this long (at most 5s)
	// after its first event. Only the verification sends it, to see the
	// first event arrive before the stream ends.
	holdHeader = "X-Bench-Hold"
)

// The larger bodies are built at start-up, the same in every process of
// the benchmark, so the driver can compare what it gets with them.
var (
	// largePayload is about 100 KB of JSON.
	largePayload = jsonItems(100<<10, func(i int) string {
		return fmt.Sprintf(`{"id":%d,"sku":"SKU-%06d","name":"Item %d","status":"shipped","price":12.5,"currency":"EUR","stock":%d}`, i, i, i, i%97)
	})
	// postBody is the 10 KB JSON body of the post scenario.
	postBody = []byte(jsonItems(10<<10, func(i int) string {
		return fmt.Sprintf(`{"sku":"SKU-%06d","qty":%d,"note":"gift wrap"}`, i, 1+i%5)
	}))
	// sseStream is the whole event stream: sseEvents events of
	// sseEventBytes each.
	sseStream    = strings.Join(sseEventList, "")
	sseEventList = func() []string {
		evs := make([]string, sseEvents)
		for i := range evs {
			ev := func(pad string) string {
				return fmt.Sprintf("id: %d\nevent: progress\ndata: {\"seq\":%d,\"of\":%d,\"status\":\"running\",\"note\":\"%s\"}\n\n", i+1, i+1, sseEvents, pad)
			}
			evs[i] = ev(strings.Repeat("x", sseEventBytes-len(ev(""))))
		}
		return evs
	}()
)

// jsonItems is {"items":[...]} with as many items as make it at least
// size bytes.
func jsonItems(size int, item func(i int) string) string {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < size-2; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(item(i))
	}
	b.WriteString("]}")
	return b.String()
}

// The upstream's own endpoints; the load never calls them.
const (
	statsPath = "/_stats" // GET: upstreamStats
	armPath   = "/_arm"   // POST ?n=N: record the next N requests
)

// probe is what the upstream saw of one recorded request.
type probe struct {
	Method         string `json:"method"`
	Path           string `json:"path"`
	Authorization  string `json:"authorization"`
	Cookie         bool   `json:"cookie"`
	CSRF           bool   `json:"csrf"`
	ForwardedHost  string `json:"forwarded_host"`
	ForwardedProto string `json:"forwarded_proto"`
	ContentType    string `json:"content_type"`
	BodyBytes      int64  `json:"body_bytes"`
}

// upstreamStats is what statsPath reports.
type upstreamStats struct {
	Requests int64   `json:"requests"` // every request but the upstream's own endpoints
	Probes   []probe `json:"probes"`   // those recorded since the last arm
}

// upstream is the API every target forwards to. The driver verifies a
// target by arming it (armPath), sending the requests, and reading what it
// recorded (statsPath): the load and the verification then use the very
// same path, and the load costs the upstream one atomic load per request.
type upstream struct {
	requests atomic.Int64
	armed    atomic.Int64
	mu       sync.Mutex
	probes   []probe
}

var (
	jsonType   = []string{"application/json"}
	sseType    = []string{"text/event-stream"}
	noCache    = []string{"no-cache"}
	payloadLen = []string{fmt.Sprint(len(payload))}
	largeLen   = []string{fmt.Sprint(len(largePayload))}
)

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case statsPath:
		u.mu.Lock()
		s := upstreamStats{Requests: u.requests.Load(), Probes: slices.Clone(u.probes)}
		u.mu.Unlock()
		w.Header()["Content-Type"] = jsonType
		json.NewEncoder(w).Encode(s)
		return
	case armPath:
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if r.Method != http.MethodPost || err != nil || n < 1 {
			http.Error(w, "POST ?n=N", http.StatusBadRequest)
			return
		}
		u.mu.Lock()
		u.probes = nil
		u.armed.Store(int64(n))
		u.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	u.requests.Add(1)
	var read int64
	if r.URL.Path == pathPost {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		read = n
	}
	// Recorded before answering: once the driver has the answer, the
	// record is there.
	if u.armed.Load() > 0 {
		u.record(r, read)
	}
	h := w.Header()
	switch r.URL.Path {
	case pathSmall, pathPost:
	case pathSlow:
		time.Sleep(slowDelay)
	case pathLarge:
		h["Content-Type"] = jsonType
		h["Content-Length"] = largeLen
		io.WriteString(w, largePayload)
		return
	case pathSSE:
		serveSSE(w, r)
		return
	default:
		http.NotFound(w, r)
		return
	}
	h["Content-Type"] = jsonType
	h["Content-Length"] = payloadLen
	io.WriteString(w, payload)
}

// record keeps what r carried, when the upstream is still armed.
func (u *upstream) record(r *http.Request, bodyBytes int64) {
	if u.armed.Add(-1) < 0 {
		return // a concurrent request took the last one
	}
	p := probe{
		Method: r.Method, Path: r.URL.Path,
		Authorization:  r.Header.Get("Authorization"),
		Cookie:         r.Header.Get("Cookie") != "",
		CSRF:           r.Header.Get("X-CSRF") != "",
		ForwardedHost:  r.Header.Get("X-Forwarded-Host"),
		ForwardedProto: r.Header.Get("X-Forwarded-Proto"),
		ContentType:    r.Header.Get("Content-Type"),
		BodyBytes:      bodyBytes,
	}
	u.mu.Lock()
	u.probes = append(u.probes, p)
	u.mu.Unlock()
}

// serveSSE writes the event stream, flushing after every event, and ends
// the response.
func serveSSE(w http.ResponseWriter, r *http.Request) {
	var hold time.Duration
	if v := r.Header.Get(holdHeader); v != "" {
		hold, _ = time.ParseDuration(v)
		hold = min(max(hold, 0), 5*time.Second)
	}
	h := w.Header()
	h["Content-Type"] = sseType
	h["Cache-Control"] = noCache
	rc := http.NewResponseController(w)
	for i, ev := range sseEventList {
		if _, err := io.WriteString(w, ev); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		if i == 0 && hold > 0 {
			select {
			case <-time.After(hold):
			case <-r.Context().Done():
				return
			}
		}
	}
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
	tokenFile := fs.String("token-file", "", "file holding the bearer added to every request (the driver writes an access token as long as the one Cloakroom forwards); a file, not a flag, so the token is not on the command line")
	gcFloor := fs.Bool("gc-floor", false, "run the collector with the heap floor `cloakroom serve` uses (internal/gctune)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	token, err := os.ReadFile(*tokenFile)
	if err != nil || len(bytes.TrimSpace(token)) == 0 {
		fmt.Fprintf(stderr, "bareproxy: --token-file must name a file holding the bearer (%v)\n", err)
		return 2
	}
	if *gcFloor {
		go gctune.Run(ctx, gctune.DefaultHeadroom, time.Second)
	}
	target, err := url.Parse(*up)
	if err != nil || target.Scheme != "http" || target.Host == "" {
		fmt.Fprintf(stderr, "bareproxy: --upstream must be an http URL, got %q\n", *up)
		return 2
	}
	return serveOn(ctx, *addr, newBareProxy(target, string(bytes.TrimSpace(token))), stdout, stderr)
}

// newBareProxy is the floor: httputil.ReverseProxy, SetURL and a fixed
// bearer, built from the same pieces as Cloakroom's routes: the upstream
// transport (proxy.NewTransport, with Cloakroom's default 30 s route
// timeout) and the buffer pool (proxy.BufferPool). Like Cloakroom's, it
// sets no FlushInterval: bodies of known length are written as they come.
func newBareProxy(target *url.URL, token string) http.Handler {
	bearer := []string{"Bearer " + token}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header["Authorization"] = bearer
		},
		Transport:  proxy.NewTransport(30 * time.Second),
		BufferPool: proxy.BufferPool{},
	}
}

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
