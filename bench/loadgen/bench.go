package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/internal/demo/idp"
)

// Targets, in the order they run.
const (
	targetDirect = "direct"
	targetBare   = "bare"
	targetMemory = "cloakroom-memory"
	targetFile   = "cloakroom-file"
	targetRedis  = "cloakroom-redis"
)

var allTargets = []string{targetDirect, targetBare, targetMemory, targetFile, targetRedis}

const (
	sessionCookie = "__Host-Http-cloakroom" // Cloakroom's default cookie name
	bareToken     = "bench-fixed-token"
	loadPath      = "/api/x"
	probePath     = "/api/probe"
	benchUser     = "alice"
)

type options struct {
	Workers     int
	Warmup      time.Duration
	Duration    time.Duration
	Quick       bool
	Targets     []string
	Cloakroom   string
	RedisServer string
	Out         string
	MaxRequests int64
	Revision    string
	WaitIdle    time.Duration
	Rounds      int
	LogLevel    string
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Workers, "workers", 32, "concurrent workers, each with one request in flight")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unrecorded warm-up per target")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "recorded interval per target")
	fs.BoolVar(&o.Quick, "quick", false, "smoke run: 1s warm-up, 3s per target, 8 workers (overrides those flags)")
	targets := fs.String("targets", strings.Join(allTargets, ","), "comma-separated targets to run, from "+strings.Join(allTargets, ","))
	fs.StringVar(&o.Cloakroom, "cloakroom", "", "the cloakroom binary (required for cloakroom-* targets)")
	fs.StringVar(&o.RedisServer, "redis-server", "redis-server", "redis-server binary for cloakroom-redis; that target is skipped when it is not found")
	fs.StringVar(&o.Out, "out", "bench/results", "directory for latest.md and latest.json; empty writes nothing")
	fs.Int64Var(&o.MaxRequests, "max-requests", 20_000_000, "upper bound on requests per target, warm-up included")
	fs.StringVar(&o.LogLevel, "cloakroom-log-level", "", "log_level for the generated Cloakroom configs (empty: Cloakroom's default, info, one access-log line per request)")
	fs.IntVar(&o.Rounds, "rounds", 1, "run every target this many times, in turn; each row is then the round with the median CPU µs/req")
	fs.DurationVar(&o.WaitIdle, "wait-idle", 30*time.Second, "before each target, wait at most this long for the machine to be under 20% busy (0: don't)")
	fs.StringVar(&o.Revision, "revision", "", "source revision to record with the results (load.sh passes git describe)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.Quick {
		o.Warmup, o.Duration, o.Workers = time.Second, 3*time.Second, 8
	}
	if o.Workers < 1 || o.Workers > 4096 {
		return nil, errors.New("--workers must be between 1 and 4096")
	}
	if o.Duration <= 0 || o.Duration > 10*time.Minute || o.Warmup < 0 || o.Warmup > 10*time.Minute {
		return nil, errors.New("--duration must be in (0, 10m] and --warmup in [0, 10m]")
	}
	if o.Rounds < 1 || o.Rounds > 20 {
		return nil, errors.New("--rounds must be between 1 and 20")
	}
	if o.MaxRequests < 1 {
		return nil, errors.New("--max-requests must be positive")
	}
	for t := range strings.SplitSeq(*targets, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(allTargets, t) {
			return nil, fmt.Errorf("unknown target %q", t)
		}
		if !slices.Contains(o.Targets, t) {
			o.Targets = append(o.Targets, t)
		}
	}
	if len(o.Targets) == 0 {
		return nil, errors.New("no targets")
	}
	slices.SortFunc(o.Targets, func(a, b string) int { return slices.Index(allTargets, a) - slices.Index(allTargets, b) })
	for _, t := range o.Targets {
		if strings.HasPrefix(t, "cloakroom-") && o.Cloakroom == "" {
			return nil, fmt.Errorf("target %s needs --cloakroom", t)
		}
	}
	return o, nil
}

// env is what every target shares: the upstream, the provider, the
// temporary directory, the loadgen binary that runs the server modes.
type env struct {
	opts     *options
	self     string
	tmp      string
	logDir   string
	upstream *proc
	upURL    string // http://127.0.0.1:PORT
	idp      *idp.Provider
	issuer   string
	gwPort   int // the port every Cloakroom target listens on, in turn
	log      io.Writer
}

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "cloakroom-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	e := &env{opts: o, self: self, tmp: tmp, logDir: tmp, log: stderr}

	ticks, fromGetconf := clockTicks()
	meta := describeMachine(o, ticks, fromGetconf)

	// The upstream, shared by every target.
	up, addr, err := startProc("upstream", e.logDir, tmp, self, true, "upstream", "--addr", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer up.stop()
	e.upstream, e.upURL = up, "http://"+addr

	// The OpenID provider, in this process; idle during the load, since
	// access tokens outlive the run.
	if slices.ContainsFunc(o.Targets, func(t string) bool { return strings.HasPrefix(t, "cloakroom-") }) {
		stopIdP, err := e.startProvider()
		if err != nil {
			return err
		}
		defer stopIdP()
	}

	var all []*targetResult
	var failed []string
	for round := 1; round <= o.Rounds; round++ {
		for _, t := range o.Targets {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := e.measure(ctx, t, round, ticks)
			if err != nil {
				return err
			}
			all = append(all, r)
			if r.Errors > 0 {
				failed = append(failed, fmt.Sprintf("%s (round %d): %d errors, first: %s", t, round, r.Errors, r.FirstError))
			}
		}
	}
	results := summarize(o.Targets, all)

	md := markdown(meta, results)
	fmt.Fprint(stdout, md)
	if o.Out != "" {
		if err := os.MkdirAll(o.Out, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.Out, "latest.md"), []byte(md), 0o644); err != nil {
			return err
		}
		raw, err := json.MarshalIndent(report{Meta: meta, Results: results, Runs: all}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.Out, "latest.json"), append(raw, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "loadgen: wrote %s and %s\n", filepath.Join(o.Out, "latest.md"), filepath.Join(o.Out, "latest.json"))
	}
	if len(failed) > 0 {
		return fmt.Errorf("requests failed, the numbers above are not valid:\n  %s", strings.Join(failed, "\n  "))
	}
	return nil
}

// measure runs target t once, after waiting for a quiet machine.
func (e *env) measure(ctx context.Context, t string, round int, ticks int64) (*targetResult, error) {
	o, log := e.opts, e.log
	var waited time.Duration
	idle := true
	if o.WaitIdle > 0 {
		if waited, idle = waitIdle(ctx, o.WaitIdle, 0.20); !idle {
			fmt.Fprintf(log, "loadgen: %s: the machine is still busy after %v; measuring anyway\n", t, o.WaitIdle.Round(time.Second))
		}
	}
	fmt.Fprintf(log, "loadgen: %s: round %d/%d: %d workers, %v warm-up, %v recorded\n", t, round, o.Rounds, o.Workers, o.Warmup, o.Duration)
	r, err := e.runTarget(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	r.Round = round
	r.compute(ticks)
	r.IdleWaitSec, r.BusyBefore = waited.Seconds(), !idle
	if r.Skipped == "" {
		fmt.Fprintf(log, "loadgen: %s: %.0f req/s, p50 %s, p99 %s, %.1f CPU µs/req, %d errors\n",
			t, r.ReqPerSec, fmtDur(r.P50), fmtDur(r.P99), r.CPUMicrosPerReq, r.Errors)
	} else {
		fmt.Fprintf(log, "loadgen: %s: skipped: %s\n", t, r.Skipped)
	}
	return r, nil
}

// startProvider serves the development OpenID provider on 127.0.0.1 with
// one client whose redirect URI is the gateway port's callback.
func (e *env) startProvider() (func(), error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	e.gwPort = port
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.issuer = "http://" + ln.Addr().String()
	public := fmt.Sprintf("http://localhost:%d", port)
	p, err := idp.New(idp.Options{
		Issuer: e.issuer,
		Clients: []idp.Client{{
			ID: "bench", Secret: "bench-secret",
			RedirectURIs:           []string{public + "/bff/callback"},
			PostLogoutRedirectURIs: []string{public + "/"},
		}},
		Users: []idp.User{{
			Subject: "alice-1", Username: benchUser, Password: benchUser,
			Claims: map[string]any{"name": "Alice", "email": "alice@example.com", "groups": []string{"users"}},
		}},
		AccessTokenTTL:  time.Hour,
		IDTokenTTL:      time.Hour,
		RefreshTokenTTL: 24 * time.Hour,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	e.idp = p
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}

// runTarget starts the target's process, checks one request end to end,
// and measures it.
func (e *env) runTarget(ctx context.Context, name string) (*targetResult, error) {
	o := e.opts
	res := &targetResult{Target: name}
	watch := map[string]int{"loadgen": os.Getpid(), "upstream": e.upstream.pid()}
	hdr := http.Header{"X-Csrf": {"1"}}
	var base string // scheme://host:port the load goes to

	switch name {
	case targetDirect:
		base = e.upURL
		watch["target"] = e.upstream.pid()
		delete(watch, "upstream")
		hdr.Set("Cookie", sessionCookie+"="+dummyTicket())
	case targetBare:
		p, addr, err := startProc("bareproxy", e.logDir, e.tmp, e.self, true,
			"bareproxy", "--addr", "127.0.0.1:0", "--upstream", e.upURL+"/", "--token", bareToken)
		if err != nil {
			return nil, err
		}
		defer p.stop()
		base = "http://" + addr
		watch["target"] = p.pid()
		hdr.Set("Cookie", sessionCookie+"="+dummyTicket())
	default:
		store := "memory"
		switch name {
		case targetFile:
			store = "file:" + filepath.Join(e.tmp, "s.db")
		case targetRedis:
			bin, err := exec.LookPath(o.RedisServer)
			if err != nil {
				res.Skipped = fmt.Sprintf("redis-server not found (%v)", err)
				return res, nil
			}
			rp, raddr, err := startRedis(ctx, bin, e.logDir, e.tmp)
			if err != nil {
				return nil, err
			}
			defer rp.stop()
			store = "redis://" + raddr
			watch["redis-server"] = rp.pid()
		}
		p, err := e.startCloakroom(ctx, name, store)
		if err != nil {
			return nil, err
		}
		defer p.stop()
		base = fmt.Sprintf("http://localhost:%d", e.gwPort)
		watch["target"] = p.pid()
		cookie, err := login(ctx, base)
		if err != nil {
			return nil, fmt.Errorf("login: %w; gateway log:\n%s", err, p.tail())
		}
		hdr.Set("Cookie", cookie.Name+"="+cookie.Value)
		res.Store = store
		defer func() {
			if err := p.alive(); err != nil {
				fmt.Fprintf(e.log, "loadgen: %s: %v\n", name, err)
			}
		}()
	}

	if err := e.verify(ctx, name, base, hdr); err != nil {
		return nil, err
	}
	lr, err := runLoad(ctx, loadSpec{
		URL: base + loadPath, Header: hdr, Workers: o.Workers,
		Warmup: o.Warmup, Duration: o.Duration, MaxRequests: o.MaxRequests, Watch: watch,
	})
	if err != nil {
		return nil, err
	}
	res.fill(lr)
	return res, nil
}

// startCloakroom writes a config for store and runs `cloakroom serve`,
// waiting (at most 15s) until /bff/login redirects to the provider.
func (e *env) startCloakroom(ctx context.Context, name, store string) (*proc, error) {
	key := make([]byte, 32)
	rand.Read(key)
	cfg := fmt.Sprintf(`# Generated by bench/loadgen for target %s.
listen: 127.0.0.1:%[2]d
public_url: http://localhost:%[2]d
oidc:
  issuer: %[3]s
  client_id: bench
  client_secret: bench-secret
session:
  store: %[4]q
  keys: ["base64:%[5]s"]
rate_limit: {api_per_second: 0, login_per_minute: 0}
apis:
  - path: /api/
    upstream: %[6]s/
    token: user
`, name, e.gwPort, e.issuer, store, base64.StdEncoding.EncodeToString(key), e.upURL)
	if e.opts.LogLevel != "" {
		cfg += fmt.Sprintf("log_level: %q\n", e.opts.LogLevel)
	}
	path := filepath.Join(e.tmp, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p, _, err := startProc(name, e.logDir, e.tmp, e.opts.Cloakroom, false, "serve", "--config", path)
	if err != nil {
		return nil, err
	}
	client := newClient(1)
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("http://localhost:%d/bff/login", e.gwPort)
	deadline := time.Now().Add(15 * time.Second)
	for range 300 {
		if err := p.alive(); err != nil {
			return nil, err
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("cloakroom never became ready; log:\n%s", p.tail())
}

// verify sends one request the way the load will, to the probe path, and
// checks that it is answered 200 with the upstream's body and what the
// upstream saw: for the proxies a bearer, for Cloakroom the provider's
// own access token and no cookie or CSRF header.
func (e *env) verify(ctx context.Context, name, base string, hdr http.Header) error {
	client := newClient(1)
	defer client.CloseIdleConnections()
	before, err := e.upstreamStats(ctx, client)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+probePath, nil)
	if err != nil {
		return err
	}
	req.Header = hdr.Clone()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("first request: status %d, want 200: %s", resp.StatusCode, body)
	}
	if string(body) != payload {
		return fmt.Errorf("first request: body is not the upstream's: %s", body)
	}
	after, err := e.upstreamStats(ctx, client)
	if err != nil {
		return err
	}
	if after.Probes != before.Probes+1 {
		return fmt.Errorf("first request: the upstream saw %d probe requests, want 1", after.Probes-before.Probes)
	}
	auth := after.ProbeAuthorization
	switch {
	case name == targetDirect:
		return nil
	case name == targetBare:
		if auth != "Bearer "+bareToken {
			return fmt.Errorf("the upstream saw Authorization %q, want the fixed bearer", auth)
		}
		return nil
	}
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return fmt.Errorf("the upstream saw Authorization %q, want Bearer <access token>", auth)
	}
	claims, err := e.idp.VerifyAccessToken(tok)
	if err != nil {
		return fmt.Errorf("the upstream's bearer is not an access token of the provider: %w", err)
	}
	if claims["sub"] != "alice-1" {
		return fmt.Errorf("the upstream's bearer is for %v, want alice-1", claims["sub"])
	}
	if after.ProbeCookie || after.ProbeCSRF {
		return fmt.Errorf("the upstream saw the browser's cookie (%v) or CSRF header (%v)", after.ProbeCookie, after.ProbeCSRF)
	}
	if want := fmt.Sprintf("localhost:%d", e.gwPort); after.ProbeForwardedHost != want {
		return fmt.Errorf("the upstream saw X-Forwarded-Host %q, want %q", after.ProbeForwardedHost, want)
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

// dummyTicket has the shape of a session ticket (32 random bytes,
// base64url), so direct and bare get requests as large as Cloakroom's.
func dummyTicket() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
