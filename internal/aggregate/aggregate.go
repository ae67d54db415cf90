// Package aggregate serves composite endpoints: one GET from the frontend
// fans out to several upstream API calls in parallel and is answered with
// one JSON object, {"<part>": <that part's JSON>, ...}, optionally shaped
// for the kind of frontend asking (see Profile).
//
// All parts run at once under one overall deadline, each also under its
// own timeout; a part may wait for another whose JSON its path uses. A
// failed optional part is null and listed in
//
//	"_meta": {"errors": {"<part>": {"status": 504, "error": "timed out"}}}
//
// and "_meta" is present only when something failed. A failed required part
// fails the whole call: 504 problem+json when it timed out, 502 otherwise,
// or the caller's own error as it is (the Bearer's 401 or 403, 400 for a
// missing query parameter). Upstream bodies are never echoed, only short
// reasons.
//
// An upstream request carries only what this package puts there: the
// part's bearer token, Accept: application/json, the request id and a
// well-formed W3C traceparent. The browser's cookies and other headers do
// not travel, and no redirect is followed.
//
// Like proxy, the package knows nothing of sessions or OAuth: tokens come
// through the one-method Bearer interface, claims through Options.Claims.
package aggregate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cloakroom/cloakroom/internal/httpx"
)

const (
	// QueryProfile is the query parameter that chooses a Profile; it wins
	// over HeaderClientProfile.
	QueryProfile = "profile"
	// HeaderClientProfile chooses a Profile when the query does not.
	HeaderClientProfile = "X-Client-Profile"

	// DefaultDeadline bounds a whole composite call when
	// Composite.Deadline is zero.
	DefaultDeadline = 10 * time.Second
	// DefaultMaxPartBytes bounds one part's response body when
	// Options.MaxPartBytes is zero.
	DefaultMaxPartBytes = 8 << 20

	headerRequestID   = "X-Request-Id"
	headerTraceparent = "Traceparent"
	metaKey           = "_meta"
)

// Bearer supplies the access token for one part's upstream call, with the
// same contract as proxy.Bearer: "" with a nil error calls without a token;
// an error fails the part, and an httpx.Error (401 with Empty, 403 problem)
// is what the caller gets, as it is, when the part is required.
type Bearer interface {
	Token(r *http.Request) (string, error)
}

// Part is one upstream call of a composite.
//
// Path is a template relative to Upstream, e.g. "me" or
// "users/{claims.sub}/orders?limit={query.limit}". Placeholders:
//
//   - {claims.<name>}: the caller's claim (Options.Claims); a string,
//     number or boolean.
//   - {query.<name>}: the first value of the inbound query parameter.
//   - {path.<name>}: r.PathValue(name), a wildcard of Composite.Path.
//   - {parts.<part>.<field>...}: a scalar in another part's JSON, found
//     through objects and array indexes ("items.0.id"); this part then
//     waits for that one, and fails when it fails.
//
// Each value is escaped for where it stands (url.PathEscape before the
// "?", url.QueryEscape after it), so it stays one path segment or one
// parameter value: it can not add segments, parameters or a fragment, nor
// change the host. An empty or missing value fails the part with 400 (401
// for a claim when the caller is anonymous); so does a path value with a
// dot segment or a backslash, since an upstream that decodes %2F before
// routing would read it as leaving the base, or with a "%" escape for a dot,
// slash or backslash, or bytes that are not valid UTF-8, which an upstream
// that decodes twice or leniently would read so. The expanded path is joined
// to Upstream's path, treated as a directory, and checked again.
type Part struct {
	// Name is the part's key in the answer: not empty, no ".", not "_meta".
	Name string
	// Upstream is the part's API base, e.g. http://orders:8080/v1/.
	Upstream *url.URL
	Path     string
	// Bearer gives the token; nil calls without one.
	Bearer Bearer
	// Required parts fail the whole call when they fail.
	Required bool
	// Timeout bounds this part, waiting for its dependencies included;
	// zero means only the composite's deadline.
	Timeout time.Duration
	// Transport, when set, makes this part's call instead of
	// Options.Transport: a part that uses an API route with TLS settings
	// of its own (a CA, a client certificate) gets a transport with them.
	Transport http.RoundTripper
}

// Composite is one aggregated endpoint.
type Composite struct {
	// Path is the ServeMux pattern the server registers the handler under,
	// e.g. "GET /bff/users/{id}/dashboard". When set, every {path.x}
	// placeholder must name one of its wildcards. The handler itself does
	// not route.
	Path  string
	Parts []Part
	// Profiles are chosen by ?profile= or X-Client-Profile; an unknown
	// name is answered with 400.
	Profiles map[string]Profile
	// DefaultProfile applies when the request names none; "" leaves the
	// answer unshaped.
	DefaultProfile string
	// Deadline bounds the whole call; zero means DefaultDeadline.
	Deadline time.Duration
}

// Options are what the server provides to every composite.
type Options struct {
	// Claims returns the caller's session claims for {claims.x}; nil or
	// empty when the caller is anonymous. Required when a template uses
	// claims.
	Claims func(r *http.Request) map[string]any
	// Transport makes the upstream calls (no redirects are followed);
	// nil means a transport with dial, TLS and response-header timeouts.
	Transport http.RoundTripper
	// MaxPartBytes bounds one part's response body; zero means
	// DefaultMaxPartBytes.
	MaxPartBytes int64
	// Logger gets failed parts; nil discards.
	Logger *slog.Logger
	// DPoP, when set, keeps the upstreams' DPoP nonces for parts whose
	// Bearer is a DPoPBearer: their DPoP-bound tokens go with proofs (see
	// dpop.go). Nil: every token goes as a bearer token.
	DPoP DPoPNonces
	// Now is the clock of DPoP proofs; default time.Now.
	Now func() time.Time
}

// NewTransport returns the transport New uses when Options.Transport is
// nil: httpx.NewTransport with httpx.UpstreamIdlePerHost idle connections per upstream host.
func NewTransport(responseHeader time.Duration) *http.Transport {
	return httpx.NewTransport(responseHeader, httpx.UpstreamIdlePerHost)
}

type part struct {
	Part
	tmpl    template
	key     []byte // `"<name>":`
	origin  string // scheme://host
	baseEsc string // Upstream's escaped path, ending in "/"
	baseDec string // the same, decoded
	baseQ   string // Upstream's own query, kept in front
	// needed: another part's template reads this part's JSON.
	needed bool
}

type handler struct {
	name      string
	parts     []*part
	profiles  map[string]*shaper
	def       *shaper
	deadline  time.Duration
	max       int64
	transport http.RoundTripper
	claims    func(*http.Request) map[string]any
	hasClaims bool // some template uses {claims.x}
	hasDeps   bool
	log       *slog.Logger
	dpop      DPoPNonces
	now       func() time.Time
}

// New returns the handler of composite c. Every template and profile path
// is parsed here, once; an invalid one, an unknown part, a dependency cycle
// or a default profile that does not exist is an error.
func New(c Composite, o Options) (http.Handler, error) {
	if len(c.Parts) == 0 {
		return nil, errors.New("a composite needs at least one part")
	}
	if c.Deadline < 0 {
		return nil, fmt.Errorf("deadline %v is negative", c.Deadline)
	}
	if o.MaxPartBytes < 0 {
		return nil, fmt.Errorf("max part bytes %d is negative", o.MaxPartBytes)
	}
	h := &handler{
		name:      c.Path,
		deadline:  c.Deadline,
		max:       o.MaxPartBytes,
		transport: o.Transport,
		claims:    o.Claims,
		log:       o.Logger,
		dpop:      o.DPoP,
		now:       o.Now,
		profiles:  map[string]*shaper{},
	}
	if h.deadline == 0 {
		h.deadline = DefaultDeadline
	}
	if h.max == 0 {
		h.max = DefaultMaxPartBytes
	}
	if h.transport == nil {
		h.transport = NewTransport(h.deadline)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}

	index := map[string]int{}
	names := make([]string, len(c.Parts))
	for i, p := range c.Parts {
		switch {
		case p.Name == "":
			return nil, fmt.Errorf("part %d has no name", i)
		case strings.ContainsAny(p.Name, ".{}"):
			return nil, fmt.Errorf("part %q: a name must not contain \".\", \"{\" or \"}\"", p.Name)
		case p.Name == metaKey:
			return nil, fmt.Errorf("part %q: the name is reserved", p.Name)
		}
		if _, dup := index[p.Name]; dup {
			return nil, fmt.Errorf("part %q is listed twice", p.Name)
		}
		index[p.Name] = i
		names[i] = p.Name
	}
	var wildcards map[string]bool
	if c.Path != "" {
		wildcards = wildcardNames(c.Path)
	}
	for _, p := range c.Parts {
		pp, err := newPart(p, index, wildcards)
		if err != nil {
			return nil, fmt.Errorf("part %q: %w", p.Name, err)
		}
		h.parts = append(h.parts, pp)
	}
	for _, p := range h.parts {
		for _, d := range p.tmpl.deps {
			h.parts[d].needed = true
			h.hasDeps = true
		}
		for _, pc := range append(p.tmpl.path[:len(p.tmpl.path):len(p.tmpl.path)], p.tmpl.query...) {
			if pc.src == fromClaims {
				h.hasClaims = true
			}
		}
	}
	if cycle := findCycle(h.parts); cycle != nil {
		return nil, fmt.Errorf("parts depend on each other in a cycle: %s", strings.Join(cycle, " -> "))
	}
	if h.hasClaims && h.claims == nil {
		return nil, errors.New("a part's path uses {claims.x} but Options.Claims is nil")
	}
	for name, p := range c.Profiles {
		if name == "" {
			return nil, errors.New("a profile has an empty name")
		}
		s, err := compileProfile(p, names, index)
		if err != nil {
			return nil, fmt.Errorf("profile %q: %w", name, err)
		}
		h.profiles[name] = s
	}
	if c.DefaultProfile != "" {
		h.def = h.profiles[c.DefaultProfile]
		if h.def == nil {
			return nil, fmt.Errorf("default profile %q is not among the profiles", c.DefaultProfile)
		}
	}
	return h, nil
}

func newPart(p Part, index map[string]int, wildcards map[string]bool) (*part, error) {
	u := p.Upstream
	switch {
	case u == nil:
		return nil, errors.New("no upstream")
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("upstream %q: want an absolute http or https URL", u.Redacted())
	case u.User != nil:
		return nil, fmt.Errorf("upstream %q: user info is not allowed", u.Redacted())
	case u.Fragment != "":
		return nil, fmt.Errorf("upstream %q: a fragment is not allowed", u.Redacted())
	}
	if p.Timeout < 0 {
		return nil, fmt.Errorf("timeout %v is negative", p.Timeout)
	}
	t, err := parseTemplate(p.Path, index, wildcards)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", p.Path, err)
	}
	for _, d := range t.deps {
		if d == index[p.Name] {
			return nil, errors.New("a part can not depend on itself")
		}
	}
	key, _ := json.Marshal(p.Name)
	pp := &part{
		Part:    p,
		tmpl:    t,
		key:     append(key, ':'),
		origin:  u.Scheme + "://" + u.Host,
		baseEsc: u.EscapedPath(),
		baseQ:   u.RawQuery,
	}
	if !strings.HasSuffix(pp.baseEsc, "/") {
		pp.baseEsc += "/"
	}
	if pp.baseDec, err = url.PathUnescape(pp.baseEsc); err != nil {
		return nil, fmt.Errorf("upstream %q: %w", u.Redacted(), err)
	}
	return pp, nil
}

// findCycle returns the names along a dependency cycle, or nil.
func findCycle(parts []*part) []string {
	const (
		unseen = iota
		open
		closed
	)
	state := make([]int, len(parts))
	var stack []int
	var visit func(i int) []string
	visit = func(i int) []string {
		state[i] = open
		stack = append(stack, i)
		for _, d := range parts[i].tmpl.deps {
			switch state[d] {
			case open:
				var names []string
				for j := len(stack) - 1; j >= 0; j-- {
					names = append([]string{parts[stack[j]].Name}, names...)
					if stack[j] == d {
						break
					}
				}
				return append(names, parts[d].Name)
			case unseen:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = closed
		return nil
	}
	for i := range parts {
		if state[i] == unseen {
			if c := visit(i); c != nil {
				return c
			}
		}
	}
	return nil
}

// failure is why a part has no value.
type failure struct {
	status int    // the upstream's status, 502/504, or the caller's error code
	reason string // short and public: never an upstream body
	err    error  // logged only
	// caller is the caller's own problem (no token, a bad value); a
	// required part answers with it as it is.
	caller   *httpx.Error
	canceled bool // the call was over before this part finished
}

func callerFailure(he httpx.Error) *failure {
	reason := he.Msg
	if reason == "" {
		reason = http.StatusText(he.Code)
	}
	return &failure{status: he.Code, reason: reason, err: he, caller: &he}
}

func badValue(format string, args ...any) *failure {
	return callerFailure(httpx.Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)})
}

// asRequired is the answer of a call whose required part name failed
// with f: the caller's own error as it is, else 504 or 502.
func (f *failure) asRequired(name string) error {
	if f.caller != nil {
		return *f.caller
	}
	if f.status == http.StatusGatewayTimeout {
		return httpx.Error{Code: http.StatusGatewayTimeout, Msg: fmt.Sprintf("required part %q did not answer in time", name), Err: f.err}
	}
	return httpx.Error{Code: http.StatusBadGateway, Msg: fmt.Sprintf("required part %q failed: %s", name, f.reason), Err: f.err}
}

// upstreamFailure maps a failed call: timeout 504, else 502.
func upstreamFailure(ctx context.Context, err error) *failure {
	if ctx.Err() != nil {
		return ctxFailure(ctx)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return &failure{status: http.StatusGatewayTimeout, reason: "timed out", err: err}
	}
	return &failure{status: http.StatusBadGateway, reason: "upstream unavailable", err: err}
}

func ctxFailure(ctx context.Context) *failure {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &failure{status: http.StatusGatewayTimeout, reason: "timed out", err: ctx.Err()}
	}
	return &failure{status: http.StatusBadGateway, reason: "canceled", err: context.Cause(ctx), canceled: true}
}

type result struct {
	body []byte // valid JSON
	val  any    // body decoded (json.Number for numbers), when decoded
	dec  bool
	fail *failure
}

// call is the state of one request.
type call struct {
	r         *http.Request
	query     url.Values
	claims    map[string]any
	requestID string
	trace     string
	results   []result
	done      []chan struct{} // closed when a part has its result; nil without dependencies
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpx.WriteError(w, r, h.log, httpx.Error{Code: http.StatusMethodNotAllowed, Msg: "only GET and HEAD are allowed"})
		return
	}
	c := &call{r: r, query: r.URL.Query(), results: make([]result, len(h.parts))}
	sh, err := h.profile(r, c.query)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	// A required part's missing query or path value is the caller's
	// mistake: say so before calling anything.
	for _, p := range h.parts {
		if !p.Required {
			continue
		}
		if f := c.precheck(p); f != nil {
			httpx.WriteError(w, r, h.log, f.asRequired(p.Name))
			return
		}
	}
	if h.hasClaims {
		c.claims = h.claims(r)
	}
	if h.hasDeps {
		c.done = make([]chan struct{}, len(h.parts))
		for i := range c.done {
			c.done[i] = make(chan struct{})
		}
	}
	c.requestID = httpx.RequestID(r.Context())
	if c.requestID == "" {
		if id := r.Header.Get(headerRequestID); validRequestID(id) {
			c.requestID = id
		}
	}
	if tp := r.Header.Get(headerTraceparent); validTraceparent(tp) {
		c.trace = tp
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.deadline)
	defer cancel()
	// The group's context ends at the first failed required part, which
	// is also the error Wait returns: the other parts stop early.
	g, gctx := errgroup.WithContext(ctx)
	// Each part gets its own copy of the request's Info: the token layer
	// writes into it (the session handle, a DPoP key), and parts run at
	// once. The session handle goes back to the request's Info after Wait.
	outer := httpx.InfoOf(r.Context())
	var infos []httpx.Info
	if outer != nil {
		infos = make([]httpx.Info, len(h.parts))
	}
	for i, p := range h.parts {
		decode := p.needed || sh != nil && sh.decode[i]
		pctx := gctx
		if outer != nil {
			infos[i] = httpx.Info{RequestID: outer.RequestID, Route: outer.Route}
			pctx = httpx.WithInfo(gctx, &infos[i])
		}
		g.Go(func() error {
			c.results[i] = h.run(pctx, c, i, decode)
			if c.done != nil {
				close(c.done[i])
			}
			if f := c.results[i].fail; f != nil && p.Required {
				return f.asRequired(p.Name)
			}
			return nil
		})
	}
	err = g.Wait()
	for i := range infos {
		if outer.Session == "" {
			outer.Session = infos[i].Session
		}
	}
	if r.Context().Err() != nil {
		h.log.InfoContext(r.Context(), "client went away", "request_id", c.requestID, "composite", h.name)
		w.WriteHeader(499)
		return
	}
	h.logFailures(r.Context(), c)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	body, err := h.render(c.results, sh)
	if err != nil {
		httpx.WriteError(w, r, h.log, fmt.Errorf("render composite: %w", err))
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// profile returns the request's shaper, nil for an unshaped answer.
func (h *handler) profile(r *http.Request, q url.Values) (*shaper, error) {
	name := q.Get(QueryProfile)
	if name == "" {
		name = r.Header.Get(HeaderClientProfile)
	}
	if name == "" {
		return h.def, nil
	}
	if s, ok := h.profiles[name]; ok {
		return s, nil
	}
	return nil, httpx.Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("unknown profile %q", name)}
}

func (h *handler) logFailures(ctx context.Context, c *call) {
	for i, res := range c.results {
		f := res.fail
		if f == nil || f.canceled {
			continue
		}
		level := slog.LevelWarn
		if f.caller != nil {
			level = slog.LevelInfo
		}
		h.log.LogAttrs(ctx, level, "composite part failed",
			slog.String("request_id", c.requestID),
			slog.String("composite", h.name),
			slog.String("part", h.parts[i].Name),
			slog.String("upstream", h.parts[i].origin),
			slog.Int("status", f.status),
			slog.String("error", errString(f.err)))
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// run makes part i's call.
func (h *handler) run(ctx context.Context, c *call, i int, decode bool) result {
	p := h.parts[i]
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
		defer cancel()
	}
	for _, d := range p.tmpl.deps {
		select {
		case <-c.done[d]:
		case <-ctx.Done():
			return result{fail: ctxFailure(ctx)}
		}
		if c.results[d].fail != nil {
			return result{fail: &failure{status: http.StatusBadGateway, reason: fmt.Sprintf("depends on failed part %s", h.parts[d].Name)}}
		}
	}
	target, f := p.target(c)
	if f != nil {
		return result{fail: f}
	}
	var token string
	var key DPoPSigner
	if p.Bearer != nil {
		var err error
		if db, ok := p.Bearer.(DPoPBearer); ok && h.dpop != nil {
			token, key, err = db.DPoPToken(c.r.WithContext(ctx))
		} else {
			token, err = p.Bearer.Token(c.r.WithContext(ctx))
		}
		if err != nil {
			if ctx.Err() != nil {
				return result{fail: ctxFailure(ctx)}
			}
			var he httpx.Error
			if !errors.As(err, &he) {
				he = httpx.Error{Code: http.StatusInternalServerError, Msg: "internal error", Err: err}
			}
			return result{fail: callerFailure(he)}
		}
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return result{fail: &failure{status: http.StatusBadGateway, reason: "bad upstream URL", err: err}}
	}
	hd := req.Header
	hd.Set("Accept", "application/json")
	if token != "" && key == nil {
		hd.Set("Authorization", "Bearer "+token)
	}
	if c.requestID != "" {
		hd.Set(headerRequestID, c.requestID)
	}
	if c.trace != "" {
		hd.Set(headerTraceparent, c.trace)
	}
	tr := h.transport
	if p.Transport != nil {
		tr = p.Transport
	}
	var resp *http.Response
	if token != "" && key != nil {
		resp, err = h.sendDPoP(tr, req, p, token, key)
	} else {
		resp, err = tr.RoundTrip(req)
	}
	if err != nil {
		return result{fail: upstreamFailure(ctx, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return result{fail: &failure{status: resp.StatusCode, reason: fmt.Sprintf("upstream answered %d", resp.StatusCode)}}
	}
	if !isJSON(resp.Header.Get("Content-Type")) {
		return result{fail: &failure{status: http.StatusBadGateway, reason: "upstream answered without a JSON content type",
			err: fmt.Errorf("content type %q", resp.Header.Get("Content-Type"))}}
	}
	body, err := readBody(resp, h.max)
	if errors.Is(err, errTooLarge) {
		return result{fail: &failure{status: http.StatusBadGateway, reason: fmt.Sprintf("upstream answer is larger than %d bytes", h.max)}}
	}
	if err != nil {
		return result{fail: upstreamFailure(ctx, err)}
	}
	if !json.Valid(body) {
		return result{fail: &failure{status: http.StatusBadGateway, reason: "upstream answered invalid JSON"}}
	}
	res := result{body: body}
	if decode {
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if err := d.Decode(&res.val); err != nil {
			return result{fail: &failure{status: http.StatusBadGateway, reason: "upstream answered invalid JSON", err: err}}
		}
		res.dec = true
	}
	return res
}

// target expands p's template into the upstream URL.
func (p *part) target(c *call) (string, *failure) {
	esc, rawQuery, f := p.tmpl.expand(c.value)
	if f != nil {
		return "", f
	}
	full := p.baseEsc + esc
	dec, err := url.PathUnescape(full)
	if err != nil || !strings.HasPrefix(dec, p.baseDec) || checkDecodedPath(dec) != nil {
		return "", badValue("a value would leave the upstream path of part %s", p.Name)
	}
	var b strings.Builder
	b.Grow(len(p.origin) + len(full) + len(p.baseQ) + len(rawQuery) + 2)
	b.WriteString(p.origin)
	b.WriteString(full)
	if p.baseQ != "" || rawQuery != "" {
		b.WriteByte('?')
		b.WriteString(p.baseQ)
		if p.baseQ != "" && rawQuery != "" {
			b.WriteByte('&')
		}
		b.WriteString(rawQuery)
	}
	return b.String(), nil
}

// precheck resolves p's query and path values, which need no claims and
// no other part.
func (c *call) precheck(p *part) *failure {
	for _, pc := range p.tmpl.path {
		if pc.src == fromQuery || pc.src == fromPath {
			if _, f := c.value(pc, true); f != nil {
				return f
			}
		}
	}
	for _, pc := range p.tmpl.query {
		if pc.src == fromQuery || pc.src == fromPath {
			if _, f := c.value(pc, false); f != nil {
				return f
			}
		}
	}
	return nil
}

// value resolves one placeholder, unescaped; inPath says it stands in the
// path, where it must not read as a dot segment once an upstream decodes
// %2F, nor hold a backslash, nor anything httpx.CheckDecodedPath refuses.
func (c *call) value(pc piece, inPath bool) (string, *failure) {
	var v string
	switch pc.src {
	case fromQuery:
		if v = c.query.Get(pc.text); v == "" {
			return "", badValue("missing query parameter %s", pc.text)
		}
	case fromPath:
		if v = c.r.PathValue(pc.text); v == "" {
			return "", badValue("missing path value %s", pc.text)
		}
	case fromClaims:
		raw, ok := c.claims[pc.text]
		if !ok && len(c.claims) == 0 {
			return "", callerFailure(httpx.Error{Code: http.StatusUnauthorized, Msg: "not logged in", Empty: true})
		}
		if v, ok = scalar(raw); !ok || v == "" {
			return "", badValue("missing claim %s", pc.text)
		}
	case fromPart:
		x, ok := field(c.results[pc.part].val, pc.field)
		if v, ok = scalarIf(x, ok); !ok || v == "" {
			return "", &failure{status: http.StatusBadGateway, reason: fmt.Sprintf("no value at %s", pc.text)}
		}
	}
	if inPath {
		if err := checkDecodedPath(v); err != nil {
			return "", badValue("the value for {%s} is not allowed: %v", sourceName(pc.src)+"."+pc.text, err)
		}
	}
	return v, nil
}

func scalarIf(v any, ok bool) (string, bool) {
	if !ok {
		return "", false
	}
	return scalar(v)
}

func sourceName(s source) string {
	switch s {
	case fromClaims:
		return "claims"
	case fromQuery:
		return "query"
	case fromPath:
		return "path"
	case fromPart:
		return "parts"
	}
	return ""
}

// field finds path in a decoded JSON value, through objects and array
// indexes.
func field(v any, path []string) (any, bool) {
	for _, k := range path {
		switch t := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = t[k]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			v = t[i]
		default:
			return nil, false
		}
	}
	return v, true
}

var errTooLarge = errors.New("response too large")

func readBody(resp *http.Response, max int64) ([]byte, error) {
	if resp.ContentLength > max {
		return nil, errTooLarge
	}
	size := int64(bytes.MinRead)
	if resp.ContentLength > 0 {
		size += resp.ContentLength
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, max+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > max {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// isJSON accepts application/json and any +json media type.
func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

type metaError struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

type meta struct {
	Errors map[string]metaError `json:"errors"`
}

func (h *handler) meta(results []result) *meta {
	var m *meta
	for i, res := range results {
		if res.fail == nil {
			continue
		}
		if m == nil {
			m = &meta{Errors: map[string]metaError{}}
		}
		m.Errors[h.parts[i].Name] = metaError{Status: res.fail.status, Error: res.fail.reason}
	}
	return m
}

// render writes the answer. Unshaped, every part's body is copied as it
// came, never decoded and encoded again.
func (h *handler) render(results []result, sh *shaper) ([]byte, error) {
	m := h.meta(results)
	if sh != nil {
		obj := make(map[string]any, len(results)+1)
		for i, res := range results {
			switch {
			case sh.drop[i]:
			case res.fail != nil:
				obj[h.parts[i].Name] = nil
			case sh.decode[i] && res.dec:
				obj[h.parts[i].Name] = res.val
			default:
				obj[h.parts[i].Name] = json.RawMessage(res.body)
			}
		}
		obj = sh.apply(obj)
		if m != nil {
			obj[metaKey] = m
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(obj); err != nil {
			return nil, err
		}
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
	}

	size := 2
	for i, res := range results {
		size += len(h.parts[i].key) + len(res.body) + len("null,")
	}
	var mb []byte
	if m != nil {
		var err error
		if mb, err = json.Marshal(m); err != nil {
			return nil, err
		}
		size += len(`,"_meta":`) + len(mb)
	}
	out := make([]byte, 0, size)
	out = append(out, '{')
	for i, res := range results {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, h.parts[i].key...)
		if res.fail != nil {
			out = append(out, "null"...)
		} else {
			out = append(out, res.body...)
		}
	}
	if mb != nil {
		out = append(out, `,"_meta":`...)
		out = append(out, mb...)
	}
	return append(out, '}'), nil
}

// validRequestID accepts a short id of letters, digits and "-_.:".
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.:", c) >= 0) {
			return false
		}
	}
	return true
}

// validTraceparent accepts a W3C traceparent of the version 00 layout:
// version-traceid-parentid-flags in lowercase hex, ids not all zero.
func validTraceparent(s string) bool {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] == "ff" {
		return false
	}
	for i, c := range []byte(s) {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s[3:35] != strings.Repeat("0", 32) && s[36:52] != strings.Repeat("0", 16)
}
