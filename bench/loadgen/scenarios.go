package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// scenario is one kind of load, measured for every target it runs on.
type scenario struct {
	Name string
	// Method and Path are the request sent to the target. The upstream
	// sees Path too, except for composites, whose parts each ask it for
	// PartPath.
	Method   string
	Path     string
	PartPath string
	Body     []byte // sent as application/json
	// Workers is the number of connections, each with one request in
	// flight; 0 means --workers (--login-clients for logins).
	Workers int
	// Want is the exact answer expected; composites are checked part by
	// part instead.
	Want   string
	Events int // server-sent events per answer
	Parts  int // composite parts; such scenarios run on cloakroom-memory only
	// Frontends, when set, measures cloakroom-memory as a gateway of that
	// many frontends (see frontendsYAML); such scenarios run on bare and
	// cloakroom-memory only.
	Frontends int
	Login     bool
}

// allScenarios, in the order they run within a round. The login scenario
// comes last: it leaves thousands of sessions in the stores, which the
// others should not see.
var allScenarios = []scenario{
	{Name: "small", Method: http.MethodGet, Path: pathSmall, Want: payload},
	{Name: "small-20fe", Method: http.MethodGet, Path: pathSmall, Want: payload, Frontends: manyFrontends},
	{Name: "small-256", Method: http.MethodGet, Path: pathSmall, Workers: 256, Want: payload},
	{Name: "slow-256", Method: http.MethodGet, Path: pathSlow, Workers: 256, Want: payload},
	{Name: "large", Method: http.MethodGet, Path: pathLarge, Want: largePayload},
	{Name: "post", Method: http.MethodPost, Path: pathPost, Body: postBody, Want: payload},
	{Name: "sse", Method: http.MethodGet, Path: pathSSE, Want: sseStream, Events: sseEvents},
	{Name: "composite-1", Method: http.MethodGet, Path: "/bff/composite-1", PartPath: pathSmall, Parts: 1},
	{Name: "composite-4", Method: http.MethodGet, Path: "/bff/composite-4", PartPath: pathSmall, Parts: 4},
	{Name: "login", Login: true},
}

// quickScenarios are --quick's default: one plain request, one stream.
var quickScenarios = []string{"small", "sse"}

func scenarioNames() []string {
	names := make([]string, len(allScenarios))
	for i, s := range allScenarios {
		names[i] = s.Name
	}
	return names
}

func scenarioByName(name string) scenario {
	i := slices.IndexFunc(allScenarios, func(s scenario) bool { return s.Name == name })
	return allScenarios[i]
}

// parseList splits a comma-separated list of names from known, drops
// blanks and repeats, and returns them in known's order.
func parseList(s string, known []string, what string) ([]string, error) {
	var out []string
	for n := range strings.SplitSeq(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("unknown %s %q (known: %s)", what, n, strings.Join(known, ","))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %ss", what)
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(known, a) - slices.Index(known, b) })
	return out, nil
}

// runsOn reports whether the scenario applies to target: composites and
// logins exist only in Cloakroom, the composites and the frontends need
// only one store, and the frontends' ratio needs bare next to it.
func (s scenario) runsOn(target string) bool {
	switch {
	case s.Frontends > 0:
		return target == targetBare || target == targetMemory
	case s.Parts > 0:
		return target == targetMemory
	case s.Login:
		return strings.HasPrefix(target, "cloakroom-")
	}
	return true
}

// what describes the scenario in a line of the report.
func (s scenario) what(workers int) string {
	conns := fmt.Sprintf("%d connections", workers)
	switch {
	case s.Login:
		return fmt.Sprintf("the whole code flow in a loop (GET /bff/login, the provider's form, POST credentials, /bff/callback, GET /bff/user), each login with a new cookie jar; %d clients", workers)
	case s.Parts > 0:
		parts := "1 part:"
		if s.Parts > 1 {
			parts = fmt.Sprintf("%d parts, each", s.Parts)
		}
		return fmt.Sprintf("GET %s, a composite of %s GET %s (%d-byte JSON) from the upstream; %s", s.Path, parts, s.PartPath, len(payload), conns)
	case s.Events > 0:
		return fmt.Sprintf("GET %s, text/event-stream: %d events (%d bytes in all), each flushed, then the end; %s", s.Path, s.Events, len(s.Want), conns)
	case s.Method == http.MethodPost:
		return fmt.Sprintf("POST %s with a %d-byte JSON body, read whole by the upstream, answered with %d-byte JSON; %s", s.Path, len(s.Body), len(s.Want), conns)
	case s.Frontends > 0:
		return fmt.Sprintf("GET %s, answered with %d-byte JSON, as `small`, but Cloakroom serves %d frontends on one host: %d at /f01/ to /f%02d/ and the one loaded at /, which is matched last (longest path first); bare as in `small`; %s",
			s.Path, len(s.Want), s.Frontends, s.Frontends-1, s.Frontends-1, conns)
	case s.Path == pathSlow:
		return fmt.Sprintf("GET %s, answered with %d-byte JSON after %v; %s", s.Path, len(s.Want), slowDelay, conns)
	}
	return fmt.Sprintf("GET %s, answered with %d-byte JSON; %s", s.Path, len(s.Want), conns)
}

// partNames are the names of a composite's n parts: p1, p2, ...
func partNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("p%d", i+1)
	}
	return names
}

// compositesYAML is the composites: section of the generated Cloakroom
// config: one composite per composite scenario, every part the small JSON
// through the /api/ route, required, so that a failed part fails the call.
func compositesYAML() string {
	var b strings.Builder
	b.WriteString("composites:\n")
	for _, s := range allScenarios {
		if s.Parts == 0 {
			continue
		}
		fmt.Fprintf(&b, "  - path: %s\n    parts:\n", s.Path)
		for _, p := range partNames(s.Parts) {
			fmt.Fprintf(&b, "      %s: {api: /api/, path: %q, required: true}\n", p, strings.TrimPrefix(s.PartPath, "/api/"))
		}
	}
	return b.String()
}

// manyFrontends is the number of frontends of small-20fe.
const manyFrontends = 20

// frontendsYAML is the frontends: section of the generated Cloakroom
// config with n frontends, all on public's host, where matching does the
// most work: n-1 at /f01/, /f02/, ... (each with the shared routes under
// its path, its own default cookie) and the last at /, whose cookie keeps
// the default name of a config without frontends:, so that requests and
// their Cookie header are those of the other targets. A request for / is
// compared with every longer path first.
func frontendsYAML(public string, n int) string {
	var b strings.Builder
	b.WriteString("frontends:\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  - {name: f%02d, public_url: %q, path: /f%02d/}\n", i, public, i)
	}
	fmt.Fprintf(&b, "  - {name: main, public_url: %q, path: /, session: {cookie_name: %s}}\n", public, sessionCookie)
	return b.String()
}

// header is what a browser's same-origin fetch sends the target: the
// session cookie, the CSRF header, Fetch Metadata, and for a POST its
// Origin and content type. Every target gets the same headers, with a
// cookie of the same size.
func (in *instance) header(s scenario) http.Header {
	h := http.Header{
		"Cookie":         {in.cookie},
		"X-Csrf":         {"1"},
		"Accept":         {"application/json"},
		"Sec-Fetch-Site": {"same-origin"},
		"Sec-Fetch-Mode": {"cors"},
		"Sec-Fetch-Dest": {"empty"},
	}
	if s.Events > 0 {
		h.Set("Accept", "text/event-stream")
	}
	if s.Body != nil {
		h.Set("Content-Type", "application/json")
		h.Set("Origin", in.base)
	}
	return h
}

func (in *instance) newRequest(ctx context.Context, s scenario) (*http.Request, error) {
	var body io.Reader
	if s.Body != nil {
		body = bytes.NewReader(s.Body)
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, in.base+s.Path, body)
	if err != nil {
		return nil, err
	}
	req.Header = in.header(s)
	return req, nil
}

// verified is what the verification learnt for the load.
type verified struct {
	bytes      int64         // length of the answer: every answer under load must have it
	firstEvent time.Duration // event streams: when the first event of a paused stream arrived
}

// verify sends the scenario's request once, with the upstream armed, and
// checks it end to end: a 200 with the expected answer, and what the
// upstream saw. For direct nothing adds a bearer; bare must add the one it
// was given; Cloakroom must add the provider's own access token for the
// user and drop the cookie and the CSRF header. Event streams are also
// checked to arrive event by event, not buffered to the end.
func (e *env) verify(ctx context.Context, in *instance, s scenario) (verified, error) {
	var v verified
	client := newClient(1)
	defer client.CloseIdleConnections()
	upCalls := max(s.Parts, 1)
	before, err := e.upstreamStats(ctx, client)
	if err != nil {
		return v, err
	}
	if err := e.armUpstream(ctx, client, upCalls); err != nil {
		return v, err
	}
	req, err := in.newRequest(ctx, s)
	if err != nil {
		return v, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return v, fmt.Errorf("first request: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	resp.Body.Close()
	if err != nil {
		return v, fmt.Errorf("first request: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("first request: status %d, want 200: %.300s", resp.StatusCode, body)
	}
	if err := checkAnswer(s, resp.Header.Get("Content-Type"), body); err != nil {
		return v, fmt.Errorf("first request: %w", err)
	}
	v.bytes = int64(len(body))

	after, err := e.upstreamStats(ctx, client)
	if err != nil {
		return v, err
	}
	if n := after.Requests - before.Requests; n != int64(upCalls) || len(after.Probes) != upCalls {
		return v, fmt.Errorf("first request: the upstream saw %d requests (%d recorded), want %d", n, len(after.Probes), upCalls)
	}
	for _, p := range after.Probes {
		if err := e.checkProbe(in, s, p); err != nil {
			return v, fmt.Errorf("first request: %w", err)
		}
	}
	if s.Events > 0 {
		if v.firstEvent, err = checkStreaming(ctx, client, in, s); err != nil {
			return v, err
		}
	}
	return v, nil
}

// checkAnswer compares an answer with what the scenario expects.
func checkAnswer(s scenario, contentType string, body []byte) error {
	if s.Parts > 0 {
		var parts map[string]json.RawMessage
		if err := json.Unmarshal(body, &parts); err != nil {
			return fmt.Errorf("the composite's answer is not a JSON object: %w: %.300s", err, body)
		}
		names := partNames(s.Parts)
		if len(parts) != len(names) {
			return fmt.Errorf("the composite's answer has %d keys, want %v: %.300s", len(parts), names, body)
		}
		for _, n := range names {
			var got bytes.Buffer
			if err := json.Compact(&got, parts[n]); err != nil || got.String() != payload {
				return fmt.Errorf("part %s is not the upstream's JSON: %.300s", n, parts[n])
			}
		}
		return nil
	}
	if string(body) != s.Want {
		return fmt.Errorf("the answer (%d bytes) is not the upstream's (%d bytes): %.200s", len(body), len(s.Want), body)
	}
	if s.Events > 0 {
		if !strings.HasPrefix(contentType, "text/event-stream") {
			return fmt.Errorf("Content-Type %q, want text/event-stream", contentType)
		}
		if n := strings.Count(string(body), "\n\n"); n != s.Events {
			return fmt.Errorf("%d events, want %d", n, s.Events)
		}
	}
	return nil
}

// checkProbe checks one request the upstream recorded.
func (e *env) checkProbe(in *instance, s scenario, p probe) error {
	wantPath, wantMethod := s.Path, s.Method
	if s.Parts > 0 {
		wantPath, wantMethod = s.PartPath, http.MethodGet
	}
	if p.Path != wantPath || p.Method != wantMethod {
		return fmt.Errorf("the upstream saw %s %s, want %s %s", p.Method, p.Path, wantMethod, wantPath)
	}
	if s.Body != nil && (p.BodyBytes != int64(len(s.Body)) || p.ContentType != "application/json") {
		return fmt.Errorf("the upstream read a %d-byte %q body, want %d bytes of application/json", p.BodyBytes, p.ContentType, len(s.Body))
	}
	switch in.name {
	case targetDirect:
		if p.Authorization != "" {
			return fmt.Errorf("the upstream saw an Authorization header (%s) straight from the client, want none", shape(p.Authorization))
		}
		return nil
	case targetBare:
		if p.Authorization != "Bearer "+e.bearer {
			return fmt.Errorf("the upstream saw Authorization %s, want the bearer bare was given", shape(p.Authorization))
		}
		return nil
	}
	tok, ok := strings.CutPrefix(p.Authorization, "Bearer ")
	if !ok {
		return fmt.Errorf("the upstream saw Authorization %s, want Bearer <access token>", shape(p.Authorization))
	}
	claims, err := e.idp.VerifyAccessToken(tok)
	if err != nil {
		return fmt.Errorf("the upstream's bearer is not an access token of the provider: %w", err)
	}
	if claims["sub"] != "alice-1" {
		return fmt.Errorf("the upstream's bearer is for %v, want alice-1", claims["sub"])
	}
	if p.Cookie || p.CSRF {
		return fmt.Errorf("the upstream saw the browser's cookie (%v) or CSRF header (%v)", p.Cookie, p.CSRF)
	}
	// Composite parts carry only the bearer and the request id.
	if want := strings.TrimPrefix(in.base, "http://"); s.Parts == 0 && p.ForwardedHost != want {
		return fmt.Errorf("the upstream saw X-Forwarded-Host %q, want %q", p.ForwardedHost, want)
	}
	if e.bearer != "" && len(tok) != len(e.bearer) {
		e.warnf("%s forwarded a %d-byte access token, but bare adds %d bytes: the baseline's requests differ in size", in.name, len(tok), len(e.bearer))
	}
	return nil
}

// streamHold is how long the upstream pauses after the first event when
// the streaming check asks it to.
const streamHold = 300 * time.Millisecond

// checkStreaming asks for the event stream with the upstream pausing after
// the first event, and checks that this event arrives well before the
// pause ends: the target passes events on as they come. A target that
// buffered the answer until the end, or for longer than half the pause,
// fails. It returns when the first event arrived.
func checkStreaming(ctx context.Context, client *http.Client, in *instance, s scenario) (time.Duration, error) {
	req, err := in.newRequest(ctx, s)
	if err != nil {
		return 0, err
	}
	req.Header.Set(holdHeader, streamHold.String())
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("streaming check: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("streaming check: status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("streaming check: the stream ended before its first event: %v", err)
		}
		if line == "\n" {
			break
		}
	}
	first := time.Since(t0)
	rest, err := io.ReadAll(br)
	if err != nil {
		return 0, fmt.Errorf("streaming check: %w", err)
	}
	total := time.Since(t0)
	if n := strings.Count(string(rest), "\n\n") + 1; n != s.Events {
		return 0, fmt.Errorf("streaming check: %d events, want %d", n, s.Events)
	}
	if total < streamHold {
		return 0, errors.New("streaming check: the stream ended before the upstream's pause did; is the hold header forwarded?")
	}
	if first > streamHold/2 {
		return 0, fmt.Errorf("streaming check: the first event arrived after %v, while the upstream paused %v after sending it: the target buffers the stream", first.Round(time.Millisecond), streamHold)
	}
	return first, nil
}

// armUpstream makes the upstream record the next n requests.
func (e *env) armUpstream(ctx context.Context, client *http.Client, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s%s?n=%d", e.upURL, armPath, n), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("arming the upstream: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("arming the upstream: status %d", resp.StatusCode)
	}
	return nil
}

func (e *env) upstreamStats(ctx context.Context, client *http.Client) (*upstreamStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.upURL+statsPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upstream stats: %w", err)
	}
	defer resp.Body.Close()
	var s upstreamStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("upstream stats: %w", err)
	}
	return &s, nil
}

// shape describes an Authorization value without showing it: messages
// never carry a token.
func shape(auth string) string {
	if auth == "" {
		return "(none)"
	}
	scheme, rest, _ := strings.Cut(auth, " ")
	return fmt.Sprintf("%q + %d bytes", scheme, len(rest))
}
