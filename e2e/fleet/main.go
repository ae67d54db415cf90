// Command fleet is Cloakroom's fleet test: three `cloakroom serve`
// processes behind HAProxy, sharing sessions in Redis through Sentinel,
// under a keep-alive load of signed-in users and new sign-ins, through
// the events a fleet lives through. It proves that instances restart at
// will without users noticing. scripts/fleet builds the binaries and runs
// it; `make fleet` and `make test` run that script. See docs/operations.md,
// "Running a fleet".
//
// Everything listens on 127.0.0.1, on free ports, and every child runs in
// a process group of its own that is killed when the run ends, whatever
// ends it (and the children get SIGKILL if this process dies first).
//
// The pieces:
//
//   - Redis: a primary and two replicas (redis-server), watched by three
//     Sentinels (redis-server --sentinel, quorum 2, down-after 1s).
//   - The provider: the development OpenID provider of `cloakroom demo`
//     (internal/demo/idp) in this process, with access tokens of 4s (so
//     every session refreshes every 2s), refresh-token rotation with reuse
//     detection, and a 2s grace for a rotated token presented again
//     (graceProvider), as production providers offer.
//   - The API: the demo API (internal/demo), verifying every bearer.
//   - Three instances, each with listen and admin_listen on loopback
//     ports, session.store the Sentinel URL (wait_replicas=auto),
//     shutdown_delay 2s and trusted_proxies 127.0.0.1.
//   - HAProxy: round robin, keep-alive, health checks of GET /readyz on
//     each admin port every 200ms (out after 2 failures, back after 2
//     successes); retries 3 with redispatch, or retries 0 without.
//   - The load: 12 users who sign in once and then call /bff/user and
//     /api/whoami (X-CSRF: 1) in turn, and 4 signers who sign in, make 4
//     calls and start over with a fresh cookie jar; each with its own
//     keep-alive connections and 20ms between requests. Sign-ins go
//     through HAProxy and the provider's real login form.
//
// The scenarios, in order, each under load:
//
//	steady                     4s of load
//	rolling restart            SIGTERM each instance in turn, wait for it to exit, start it again, wait until HAProxy has it UP
//	rolling restart, no retry  the same with HAProxy's retries 0 and no redispatch: only shutdown_delay keeps it clean
//	kill -9                    SIGKILL one instance, 3s of load, start it again
//	sentinel failover          SENTINEL FAILOVER, wait until the new primary has both replicas in sync
//	killed primary             SIGKILL the primary, wait until the Sentinels promote a replica and the other follows
//	final check                after the load, every session a user holds and every session a signer left behind asks /bff/user once more
//
// HAProxy is restarted between the two rolling restarts and after the
// second, while the load is paused, to switch retries off and on.
//
// The rules, checked per scenario: every gateway answer is 2xx or 3xx,
// with these exceptions. In kill -9, HAProxy's own 502, 503 or 504 for
// a request it had sent to the killed instance is a request killed in
// flight: counted apart, at most one per virtual user. In the two Redis
// scenarios, 503 (the gateway's, or HAProxy's once every instance's
// /readyz says Redis is unreachable) is allowed; 500, 502, 401 and
// transport errors never are. A session is lost when a user who signed in
// (the callback set the session cookie) later gets 401 without having
// signed out; no session may be lost. The provider must refuse no token
// request. The report prints, per scenario, its length, the requests and
// their statuses ("haproxy" marks HAProxy's own answers), the sign-ins
// completed and those that failed (a 503, or a request killed in flight;
// anything else also breaks a rule), the refreshes the provider
// granted and the grace replays among them, the sessions lost and the
// requests killed in flight; the exit status is 1 when any rule broke.
// The final check finds sessions whose creation a failover lost after
// the sign-in had succeeded, and names the scenario they were signed in
// during.
//
// The whole run takes about a minute and is bounded: -timeout (default
// 4m) ends it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/cloakroom/cloakroom/internal/demo"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	cloakroom, haproxy, redis string
	users, signers            int
	think, accessTTL, grace   time.Duration
	timeout                   time.Duration
	keep                      bool
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.cloakroom, "cloakroom", "", "the cloakroom binary (required)")
	fs.StringVar(&o.haproxy, "haproxy", "haproxy", "the haproxy binary")
	fs.StringVar(&o.redis, "redis-server", "redis-server", "the redis-server binary, also run as Sentinel")
	fs.IntVar(&o.users, "users", 12, "virtual users who sign in once and keep their session")
	fs.IntVar(&o.signers, "signers", 4, "virtual users who sign in again after every 4 calls")
	fs.DurationVar(&o.think, "think", 20*time.Millisecond, "pause between a virtual user's requests")
	fs.DurationVar(&o.accessTTL, "access-ttl", 4*time.Second, "access-token lifetime; sessions refresh at half of it")
	fs.DurationVar(&o.grace, "refresh-grace", 2*time.Second, "how long a rotated refresh token may be presented again (0: never)")
	fs.DurationVar(&o.timeout, "timeout", 4*time.Minute, "bound on the whole run")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's directory (configs, logs) even when every rule held")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.cloakroom == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: fleet -cloakroom BINARY [flags]")
		return 2
	}
	for _, b := range []*string{&o.cloakroom, &o.haproxy, &o.redis} {
		p, err := lookPath(*b)
		if err != nil {
			fmt.Fprintf(stderr, "fleet: %v\n", err)
			return 1
		}
		*b = p
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "cloakroom-fleet-")
	if err != nil {
		fmt.Fprintf(stderr, "fleet: %v\n", err)
		return 1
	}
	ps := &procs{dir: dir, logs: filepath.Join(dir, "logs")}
	if err := os.MkdirAll(ps.logs, 0o700); err != nil {
		fmt.Fprintf(stderr, "fleet: %v\n", err)
		return 1
	}
	ok, err := fleet(ctx, o, ps, stdout)
	ps.killAll()
	if err != nil {
		fmt.Fprintf(stderr, "fleet: %v\n", err)
	}
	if err != nil || !ok || o.keep {
		fmt.Fprintf(stdout, "configs and logs: %s\n", dir)
	} else {
		os.RemoveAll(dir)
	}
	if err != nil || !ok {
		return 1
	}
	return 0
}

// lookPath finds name on PATH or in /usr/sbin, where Debian puts haproxy.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if filepath.Base(name) == name {
		if p, err := exec.LookPath(filepath.Join("/usr/sbin", name)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (make deps-system installs haproxy and redis-server)", name)
}

// fleet sets everything up, runs the scenarios and prints the report; it
// reports whether every rule held.
func fleet(ctx context.Context, o options, ps *procs, out io.Writer) (bool, error) {
	say := func(format string, a ...any) {
		fmt.Fprintf(out, "%s fleet: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}
	ports, err := freePorts(7)
	if err != nil {
		return false, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])

	// The provider and the API, in this process.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	issuer := "http://" + ln.Addr().String()
	const user = "alice"
	plog, err := os.OpenFile(filepath.Join(ps.logs, "provider.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		ln.Close()
		return false, err
	}
	defer plog.Close()
	provider, err := idp.New(idp.Options{
		Logger: slog.New(slog.NewJSONHandler(plog, nil)),
		Issuer: issuer,
		Clients: []idp.Client{{
			ID: "fleet", Secret: "fleet-secret",
			RedirectURIs:           []string{base + "/bff/callback"},
			PostLogoutRedirectURIs: []string{base + "/"},
		}},
		Users:               []idp.User{{Subject: "alice-1", Username: user, Password: user, Claims: map[string]any{"name": "Alice"}}},
		AccessTokenTTL:      o.accessTTL,
		IDTokenTTL:          time.Hour,
		RefreshTokenTTL:     time.Hour,
		SessionTTL:          2 * time.Second, // every sign-in uses a fresh jar; keep the provider's table small
		RotateRefreshTokens: true,
		ReuseDetection:      true,
	})
	if err != nil {
		ln.Close()
		return false, err
	}
	grace := &graceProvider{next: provider, grace: o.grace, seen: map[[32]byte]*graceAnswer{}}
	psrv := &http.Server{Handler: grace, ReadHeaderTimeout: 10 * time.Second}
	go psrv.Serve(ln)
	defer psrv.Close()
	api := &http.Server{Handler: demo.NewAPI(provider.VerifyAccessToken), ReadHeaderTimeout: 10 * time.Second}
	aln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	go api.Serve(aln)
	defer api.Close()

	say("redis: a primary, 2 replicas, 3 sentinels")
	rf, err := startRedis(ctx, ps, o.redis, 2, 3)
	if err != nil {
		return false, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	var insts []*instance
	for i := range 3 {
		in := &instance{name: fmt.Sprintf("c%d", i), port: ports[1+2*i], adminPort: ports[2+2*i]}
		in.config = cloakroomConfig(in, base, issuer, rf.sentinelURL(), base64.StdEncoding.EncodeToString(key), "http://"+aln.Addr().String())
		insts = append(insts, in)
	}
	say("starting 3 instances")
	for _, in := range insts {
		if err := in.start(ctx, ps, o.cloakroom); err != nil {
			return false, err
		}
	}
	hp := &haproxy{ps: ps, bin: o.haproxy, port: ports[0], socket: filepath.Join(ps.dir, "haproxy.sock")}
	say("haproxy on %s, retries on", base)
	if err := hp.start(ctx, insts, true); err != nil {
		return false, err
	}

	l := &load{base: base, user: user, think: o.think}
	warm := newScenario("sign-in of the users")
	l.cur.Store(warm)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	say("load: %d users, %d signers", o.users, o.signers)
	if err := l.start(loadCtx, o.users, o.signers, &wg); err != nil {
		stopLoad()
		wg.Wait()
		return false, fmt.Errorf("the users never all signed in: %w", err)
	}

	var scs []*scenario
	stats := func() (int64, int64) {
		st := provider.Stats()
		return int64(st.RefreshGrants), int64(st.FailedGrants)
	}
	r0, f0 := stats()
	g0 := grace.replays.Load()
	warm.end(0, f0, g0)
	scs = append(scs, warm)
	// phase runs body as scenario sc: the load's answers count in it.
	phase := func(sc *scenario, body func(sc *scenario) error) error {
		say("scenario: %s", sc.name)
		r0, f0, g0 = func() (int64, int64, int64) { r, f := stats(); return r, f, grace.replays.Load() }()
		sc.start = time.Now()
		l.cur.Store(sc)
		err := body(sc)
		r, f := stats()
		sc.end(r-r0, f-f0, grace.replays.Load()-g0)
		scs = append(scs, sc)
		return err
	}
	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	restart := func(in *instance) error {
		if !in.p.terminate(30 * time.Second) {
			return fmt.Errorf("%s did not exit within 30s of SIGTERM; log:\n%s", in.name, in.p.tail())
		}
		if in.p.err != nil {
			return fmt.Errorf("%s exited with %v after SIGTERM; log:\n%s", in.name, in.p.err, in.p.tail())
		}
		if err := in.start(ctx, ps, o.cloakroom); err != nil {
			return err
		}
		return hp.waitUp(ctx, in.name)
	}
	rolling := func(*scenario) error {
		for _, in := range insts {
			if err := restart(in); err != nil {
				return err
			}
		}
		return sleep(time.Second)
	}
	switchRetries := func(on bool) error {
		say("haproxy: restarting with retries %v, load paused", map[bool]string{true: "on", false: "off"}[on])
		return l.paused(func() error {
			hp.stop()
			return hp.start(ctx, insts, on)
		})
	}
	vus := o.users + o.signers

	steps := []func() error{
		func() error {
			return phase(newScenario("steady"), func(*scenario) error { return sleep(4 * time.Second) })
		},
		func() error { return phase(newScenario("rolling restart"), rolling) },
		func() error { return switchRetries(false) },
		func() error { return phase(newScenario("rolling restart, no retry"), rolling) },
		func() error { return switchRetries(true) },
		func() error {
			sc := newScenario("kill -9")
			sc.maxInFlight = vus
			return phase(sc, func(sc *scenario) error {
				if err := sleep(2 * time.Second); err != nil {
					return err
				}
				victim := insts[1]
				sc.setKilled(victim.name)
				victim.p.kill()
				if err := sleep(3 * time.Second); err != nil {
					return err
				}
				if err := victim.start(ctx, ps, o.cloakroom); err != nil {
					return err
				}
				if err := hp.waitUp(ctx, victim.name); err != nil {
					return err
				}
				return sleep(time.Second)
			})
		},
		func() error {
			sc := newScenario("sentinel failover")
			sc.allow503 = true
			return phase(sc, func(*scenario) error {
				if err := sleep(2 * time.Second); err != nil {
					return err
				}
				old, err := rf.primary()
				if err != nil {
					return err
				}
				if _, err := redisCmd(rf.sentinels[0].addr, "SENTINEL", "FAILOVER", masterSet); err != nil {
					return fmt.Errorf("SENTINEL FAILOVER: %w", err)
				}
				cur, err := rf.settled(ctx, old, 30*time.Second)
				if err != nil {
					return err
				}
				say("primary %s -> %s", old.name, cur.name)
				return sleep(3 * time.Second)
			})
		},
		func() error {
			sc := newScenario("killed primary")
			sc.allow503 = true
			return phase(sc, func(*scenario) error {
				if err := sleep(2 * time.Second); err != nil {
					return err
				}
				old, err := rf.primary()
				if err != nil {
					return err
				}
				old.p.kill()
				cur, err := rf.settled(ctx, old, 30*time.Second)
				if err != nil {
					return err
				}
				say("primary %s killed -> %s", old.name, cur.name)
				return sleep(3 * time.Second)
			})
		},
	}
	var stepErr error
	for _, step := range steps {
		if stepErr = step(); stepErr != nil {
			break
		}
	}
	stopLoad()
	wg.Wait()
	if stepErr == nil {
		final := newScenario("final check")
		stepErr = phase(final, func(sc *scenario) error {
			l.finalCheck(ctx, sc)
			return nil
		})
	}
	ok := report(out, scs)
	return ok && stepErr == nil, stepErr
}
