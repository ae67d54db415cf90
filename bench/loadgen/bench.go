package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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
	benchUser     = "alice"
)

type options struct {
	Workers      int
	LoginClients int
	Warmup       time.Duration
	Duration     time.Duration
	Quick        bool
	Targets      []string
	Scenarios    []string
	Cloakroom    string
	RedisServer  string
	Out          string
	MaxRequests  int64
	Revision     string
	WaitIdle     time.Duration
	Rounds       int
	LogLevel     string
	BareGCFloor  bool
}

// usage heads -h. The defaults are chosen so that a full run stays near
// 11 minutes on a 2-CPU machine: 3 rounds of 37 measurements (6 request
// scenarios on 5 targets, small-20fe on 2, 2 composites, logins on 3
// stores), each about
// 0.25s of idle check, 1s of warm-up, 5s recorded and 0.15s to verify.
const usage = `loadgen: Cloakroom's load benchmark (bench/load.sh builds and runs it).

Every round starts each target once, then runs every scenario on every
target in turn, so the targets of one scenario are measured next to each
other. Each row of the report is the round with the median CPU µs/req.
A full run with the defaults (3 rounds of 37 measurements, each 1s of
warm-up and 5s recorded, down from 2s and 10s to fit) takes about 12
minutes on 2 CPUs, plus at most 1 minute of waiting for a quiet machine;
--quick is a smoke run of well under a minute.

Scenarios: %s.

Flags:
`

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, usage, strings.Join(scenarioNames(), ", "))
		fs.PrintDefaults()
	}
	fs.IntVar(&o.Workers, "workers", 32, "connections, each with one request in flight, of the scenarios whose name has no number of connections (small, small-20fe, large, post, sse, composite-*)")
	fs.IntVar(&o.LoginClients, "login-clients", 8, "concurrent clients of the login scenario, each signing in in a loop")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "unrecorded warm-up per scenario and target")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "recorded interval per scenario and target")
	fs.BoolVar(&o.Quick, "quick", false, "smoke run: --scenarios "+strings.Join(quickScenarios, ",")+" --rounds 1 --warmup 1s --duration 3s --workers 8, except for those flags given too")
	scenarios := fs.String("scenarios", "all", "comma-separated scenarios to run, from "+strings.Join(scenarioNames(), ",")+", or all")
	targets := fs.String("targets", strings.Join(allTargets, ","), "comma-separated targets to run, from "+strings.Join(allTargets, ","))
	fs.StringVar(&o.Cloakroom, "cloakroom", "", "the cloakroom binary (required for cloakroom-* targets)")
	fs.StringVar(&o.RedisServer, "redis-server", "redis-server", "redis-server binary for cloakroom-redis; that target is skipped when it is not found")
	fs.StringVar(&o.Out, "out", "bench/results", "directory for latest.md and latest.json; empty writes nothing")
	fs.Int64Var(&o.MaxRequests, "max-requests", 20_000_000, "upper bound on requests per scenario and target, warm-up included")
	fs.BoolVar(&o.BareGCFloor, "bare-gc-floor", true, "give bare the collector's heap floor that `cloakroom serve` runs with (internal/gctune), so the ratio measures the chain and not the GC setting; false compares against Go's default GOGC=100")
	fs.StringVar(&o.LogLevel, "cloakroom-log-level", "", "log_level for the generated Cloakroom configs (empty: Cloakroom's default, info, one access-log line per request)")
	fs.IntVar(&o.Rounds, "rounds", 3, "rounds; each row is then the round with the median CPU µs/req, with the range of the ratio to bare over the rounds")
	fs.DurationVar(&o.WaitIdle, "wait-idle", 10*time.Second, "before each measurement, wait at most this long, and at most "+waitIdleTotal.String()+" over the whole run, for the machine to be under 20% busy (0: don't)")
	fs.StringVar(&o.Revision, "revision", "", "source revision to record with the results (load.sh passes git describe)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if o.Quick {
		if !given["warmup"] {
			o.Warmup = time.Second
		}
		if !given["duration"] {
			o.Duration = 3 * time.Second
		}
		if !given["workers"] {
			o.Workers = 8
		}
		if !given["rounds"] {
			o.Rounds = 1
		}
		if !given["scenarios"] {
			*scenarios = strings.Join(quickScenarios, ",")
		}
	}
	if o.Workers < 1 || o.Workers > 4096 || o.LoginClients < 1 || o.LoginClients > 256 {
		return nil, errors.New("--workers must be between 1 and 4096, --login-clients between 1 and 256")
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
	var err error
	if strings.TrimSpace(*scenarios) == "all" {
		*scenarios = strings.Join(scenarioNames(), ",")
	}
	if o.Scenarios, err = parseList(*scenarios, scenarioNames(), "scenario"); err != nil {
		return nil, err
	}
	if o.Targets, err = parseList(*targets, allTargets, "target"); err != nil {
		return nil, err
	}
	for _, t := range o.Targets {
		if strings.HasPrefix(t, "cloakroom-") && o.Cloakroom == "" && o.needs(t) {
			return nil, fmt.Errorf("target %s needs --cloakroom", t)
		}
	}
	if !slices.ContainsFunc(o.Targets, o.needs) {
		return nil, errors.New("none of the scenarios runs on any of the targets")
	}
	return o, nil
}

// needs reports whether one of the scenarios runs on target t.
func (o *options) needs(t string) bool {
	return slices.ContainsFunc(o.Scenarios, func(name string) bool { return scenarioByName(name).runsOn(t) })
}

// frontends is the number of frontends of the second Cloakroom process
// that target t needs for the scenarios (see frontendsKey), 0 for none.
func (o *options) frontends(t string) int {
	n := 0
	for _, name := range o.Scenarios {
		if s := scenarioByName(name); s.Frontends > 0 && s.runsOn(t) && strings.HasPrefix(t, "cloakroom-") {
			n = max(n, s.Frontends)
		}
	}
	return n
}

// workers is the number of concurrent workers of scenario s.
func (o *options) workers(s scenario) int {
	switch {
	case s.Workers > 0:
		return s.Workers
	case s.Login:
		return o.LoginClients
	}
	return o.Workers
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
	// ports are the Cloakroom targets' ports, the same every round: the
	// provider knows their callbacks.
	ports map[string]int
	// bearer is what bare adds, and bearerFrom where it came from (see
	// bareBearer).
	bearer, bearerFrom string
	// waited is the time spent waiting for a quiet machine so far.
	waited   time.Duration
	warnings []string
	log      io.Writer
}

// waitIdleTotal caps the waits for a quiet machine over a whole run: a
// full run has about a hundred measurements, and on a machine that stays
// busy, waiting before each would double its time. The warnings say which
// measurements had no quiet machine.
const waitIdleTotal = time.Minute

// warnf logs a warning once; the report repeats it.
func (e *env) warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(e.warnings, msg) {
		e.warnings = append(e.warnings, msg)
		fmt.Fprintf(e.log, "loadgen: warning: %s\n", msg)
	}
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
	start := time.Now()

	// The upstream, shared by every target.
	up, addr, err := startProc("upstream", e.logDir, tmp, self, true, "upstream", "--addr", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer up.stop()
	e.upstream, e.upURL = up, "http://"+addr

	// The OpenID provider, in this process: it signs the users in, and
	// bare's bearer comes from it. It is idle during the load but in the
	// login scenario, since access tokens outlive the run.
	stopIdP, err := e.startProvider()
	if err != nil {
		return err
	}
	defer stopIdP()

	var all []*targetResult
	var failed []string
	for round := 1; round <= o.Rounds; round++ {
		rs, err := e.runRound(ctx, round, ticks)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Errors > 0 {
				failed = append(failed, fmt.Sprintf("%s on %s (round %d): %d errors, first: %s", r.Scenario, r.Target, round, r.Errors, r.FirstError))
			}
		}
		all = append(all, rs...)
	}
	results := summarize(o.Scenarios, o.Targets, all)
	meta.BareBearerBytes, meta.BareBearerFrom = len(e.bearer), e.bearerFrom
	meta.Warnings = e.warnings
	meta.WallSeconds = time.Since(start).Seconds()
	rep := report{Meta: meta, Results: results, Runs: all, Aggregation: aggregationOf(all), Frontends: frontendsCostOf(all)}

	md := markdown(rep)
	fmt.Fprint(stdout, md)
	if o.Out != "" {
		if err := os.MkdirAll(o.Out, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.Out, "latest.md"), []byte(md), 0o644); err != nil {
			return err
		}
		raw, err := json.MarshalIndent(rep, "", "  ")
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

// runRound starts the targets, runs every scenario on every target it
// applies to, in turn, and stops the targets.
func (e *env) runRound(ctx context.Context, round int, ticks int64) ([]*targetResult, error) {
	insts, err := e.startRound(ctx, round)
	if err != nil {
		return nil, err
	}
	defer stopAll(insts)
	var out []*targetResult
	for _, name := range e.opts.Scenarios {
		s := scenarioByName(name)
		for _, t := range e.opts.Targets {
			if !s.runsOn(t) {
				continue
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r, err := e.measure(ctx, insts, t, s, round, ticks)
			if err != nil {
				return nil, fmt.Errorf("%s on %s (round %d): %w", name, t, round, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// measure runs scenario s on target t once, after waiting for a quiet
// machine: a verification end to end, then the load.
func (e *env) measure(ctx context.Context, insts map[string]*instance, t string, s scenario, round int, ticks int64) (*targetResult, error) {
	key := instanceKey(t, s)
	o, log, in := e.opts, e.log, insts[key]
	workers := o.workers(s)
	res := &targetResult{Scenario: s.Name, Target: t, Round: round, Workers: workers, Events: s.Events, Store: in.store}
	prefix := fmt.Sprintf("loadgen: round %d/%d: %s on %s", round, o.Rounds, s.Name, t)
	if in.skipped != "" {
		res.Skipped = in.skipped
		fmt.Fprintf(log, "%s: skipped: %s\n", prefix, in.skipped)
		return res, nil
	}
	var waited time.Duration
	idle := true
	if o.WaitIdle > 0 {
		// At least one sample, so that a busy machine is always reported.
		limit := max(min(o.WaitIdle, waitIdleTotal-e.waited), time.Millisecond)
		waited, idle = waitIdle(ctx, limit, 0.20)
		e.waited += waited
		if !idle {
			fmt.Fprintf(log, "%s: the machine is still busy after %v; measuring anyway\n", prefix, waited.Round(time.Second))
		}
	}
	if err := in.alive(); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "%s: %d workers, %v warm-up, %v recorded\n", prefix, workers, o.Warmup, o.Duration)
	client := newClient(workers)
	defer client.CloseIdleConnections()
	var worker func(context.Context, int) (func() error, error)
	if s.Login {
		if _, err := loginWith(ctx, client, in.base); err != nil {
			return nil, fmt.Errorf("first login: %w%s", err, in.logTail())
		}
		worker = loginWorker(client, in.base)
	} else {
		v, err := e.verify(ctx, in, s)
		if err != nil {
			return nil, fmt.Errorf("%w%s", err, in.logTail())
		}
		res.FirstEvent = v.firstEvent
		worker = requestWorker(client, s.Method, in.base+s.Path, in.header(s), s.Body, v.bytes)
	}
	lr, err := runLoad(ctx, loadSpec{
		Workers: workers, Warmup: o.Warmup, Duration: o.Duration, MaxRequests: o.MaxRequests,
		Watch: e.watch(insts, key), Worker: worker,
	})
	if err != nil {
		return nil, err
	}
	if err := in.alive(); err != nil {
		fmt.Fprintf(log, "%s: %v\n", prefix, err)
	}
	res.fill(lr)
	res.compute(ticks)
	res.IdleWaitSec, res.BusyBefore = waited.Seconds(), !idle
	rate, unit := "req/s", "req"
	if s.Login {
		rate, unit = "logins/s", "login"
	}
	fmt.Fprintf(log, "%s: %.0f %s, p50 %s, p99 %s, %.1f CPU µs/%s, %d errors\n",
		prefix, res.ReqPerSec, rate, fmtDur(res.P50), fmtDur(res.P99), res.CPUMicrosPerReq, unit, res.Errors)
	return res, nil
}

// logTail is the end of the gateway's log, to follow an error.
func (in *instance) logTail() string {
	if in.gateway == nil {
		return ""
	}
	return "; " + in.name + " log:\n" + in.gateway.tail()
}

// idlePrefix marks, in a watch list, the processes of the targets not
// being measured: all of a round's targets run at once, and the idle ones
// must not pass for other programs.
const idlePrefix = "idle:"

// watch lists the processes whose CPU a measurement of the instance t
// (a target, or see frontendsKey) reads.
func (e *env) watch(insts map[string]*instance, t string) map[string]int {
	up := e.upstream.pid()
	w := map[string]int{"loadgen": os.Getpid(), "upstream": up}
	for role, pid := range insts[t].pids {
		w[role] = pid
	}
	if t == targetDirect {
		delete(w, "upstream") // it is the target
	}
	for name, in := range insts {
		if name == t {
			continue
		}
		for role, pid := range in.pids {
			if pid != up {
				w[idlePrefix+name+"/"+role] = pid
			}
		}
	}
	return w
}

// startProvider serves the development OpenID provider on 127.0.0.1 with
// one client whose redirect URIs are the Cloakroom targets' callbacks.
func (e *env) startProvider() (func(), error) {
	e.ports = map[string]int{}
	var redirects, postLogout []string
	for _, t := range e.opts.Targets {
		if !strings.HasPrefix(t, "cloakroom-") {
			continue
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		e.ports[t] = port
		public := fmt.Sprintf("http://localhost:%d", port)
		redirects = append(redirects, public+"/bff/callback")
		postLogout = append(postLogout, public+"/")
		if e.opts.frontends(t) == 0 {
			continue
		}
		// The process with frontends: the one signed in to is at /.
		if port, err = freePort(); err != nil {
			return nil, err
		}
		e.ports[frontendsKey(t)] = port
		public = fmt.Sprintf("http://localhost:%d", port)
		redirects = append(redirects, public+"/bff/callback")
		postLogout = append(postLogout, public+"/")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.issuer = "http://" + ln.Addr().String()
	p, err := idp.New(idp.Options{
		Issuer: e.issuer,
		Clients: []idp.Client{{
			ID: "bench", Secret: "bench-secret",
			RedirectURIs:           redirects,
			PostLogoutRedirectURIs: postLogout,
		}},
		Users: []idp.User{{
			Subject: "alice-1", Username: benchUser, Password: benchUser,
			Claims: map[string]any{"name": "Alice", "email": "alice@example.com", "groups": []string{"users"}},
		}},
		AccessTokenTTL:  time.Hour,
		IDTokenTTL:      time.Hour,
		RefreshTokenTTL: 24 * time.Hour,
		// Every login of the login scenario leaves a provider session, and
		// the provider keeps at most 10,000 (then answers 503). Short
		// sessions, pruned every 10 s, keep a full run well under that;
		// Cloakroom's sessions do not depend on them.
		SessionTTL: 2 * time.Second,
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
