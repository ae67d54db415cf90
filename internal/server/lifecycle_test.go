package server_test

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/server"
)

func TestGracefulShutdown(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	slow := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		w.Write([]byte("done"))
	})
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/slow/", Upstream: slow.URL, Token: "none"}}
	g := startGateway(t, ln, cfg, server.Options{DrainTimeout: 10 * time.Second})
	b := newBrowser(t)
	got := make(chan response, 1)
	go func() { got <- b.get(g.URL+"/slow/x", "X-CSRF", "1") }()
	<-arrived
	stopped := make(chan struct{})
	go func() { g.Stop(); close(stopped) }()
	// New connections are refused once shutdown began.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections during shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-stopped:
		t.Fatal("shutdown finished before the in-flight request")
	default:
	}
	close(release)
	if r := <-got; r.StatusCode != http.StatusOK || r.Body != "done" {
		t.Errorf("in-flight request: %d %q", r.StatusCode, r.Body)
	}
	<-stopped
}

func TestReload(t *testing.T) {
	oldUp := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("old")) })
	newUp := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("new")) })
	ln, public := listenLocal(t)
	p, srv := demoProvider(t, public, nil)
	base := func(up string, require *config.Require) *config.Config {
		cfg := baseConfig(public, srv.URL, "web", "web-secret")
		cfg.APIs = []config.API{{Path: "/api/", Upstream: up, Token: "user", Require: require}}
		cfg.RateLimit = config.RateLimit{} // the traffic below is a flood on purpose
		return cfg
	}
	reload := make(chan struct{})
	var next atomic.Pointer[func() (*config.Config, error)]
	g := startGateway(t, ln, base(oldUp.URL, nil), server.Options{
		Reload:     reload,
		LoadConfig: func() (*config.Config, error) { return (*next.Load())() },
	})
	b := newBrowser(t)
	(&env{g: g, idp: p}).login(t, b, "alice")
	// Traffic runs through every reload; no request may fail.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var failures, total atomic.Int64
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				r := b.get(g.URL+"/api/x", "X-CSRF", "1")
				total.Add(1)
				if r.StatusCode != http.StatusOK && r.StatusCode != http.StatusForbidden {
					failures.Add(1)
				}
			}
		})
	}
	// swap reloads with f and waits until the gateway has said what it
	// made of it.
	swap := func(f func() (*config.Config, error)) {
		n := strings.Count(g.Logs.String(), "configuration reload")
		next.Store(&f)
		reload <- struct{}{}
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(g.Logs.String(), "configuration reload") == n {
			if time.Now().After(deadline) {
				t.Fatal("reload never finished")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitBody := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if r := b.get(g.URL+"/api/x", "X-CSRF", "1"); r.Body == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("never answered %q", want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	swap(func() (*config.Config, error) { return base(newUp.URL, nil), nil })
	waitBody("new")
	// An invalid configuration is refused; the running one stays.
	swap(func() (*config.Config, error) { return nil, errors.New("bad file") })
	changed := base(oldUp.URL, nil)
	changed.Session.Store = "cookie"
	swap(func() (*config.Config, error) { return changed, nil })
	if r := b.get(g.URL+"/api/x", "X-CSRF", "1"); r.Body != "new" {
		t.Errorf("after refused reloads: %q", r.Body)
	}
	// A policy change applies; the session survives every reload.
	swap(func() (*config.Config, error) {
		return base(newUp.URL, &config.Require{Claims: map[string][]string{"groups": {"nobody"}}}), nil
	})
	deadline := time.Now().Add(10 * time.Second)
	for b.get(g.URL+"/api/x", "X-CSRF", "1").StatusCode != http.StatusForbidden {
		if time.Now().After(deadline) {
			t.Fatal("policy change never applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Errorf("%d of %d requests failed across reloads", f, total.Load())
	}
	if r := b.get(g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("session lost across reloads: %d", r.StatusCode)
	}
	for _, want := range []string{"configuration reload refused", "bad file", "session.store changed", "configuration reloaded"} {
		if !strings.Contains(g.Logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}
}

func TestReadiness(t *testing.T) {
	rs := redistest.Start(t)
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, public := listenLocal(t)
	p, srv := demoProvider(t, public, nil)
	p.SetDown(true)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.Session.Store = rs.URL
	runGateway(t, ln, cfg, server.Options{AdminListener: aln})
	ready := func() (int, string) {
		r := newBrowser(t).get("http://" + aln.Addr().String() + "/readyz")
		return r.StatusCode, r.Body
	}
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "identity_provider") {
		t.Errorf("provider down: %d %s", code, body)
	}
	p.SetDown(false)
	waitReady := func(want int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, body := ready()
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("readiness stuck at %d %s", code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady(http.StatusOK)
	rs.Stop()
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "session_store") {
		t.Errorf("store down: %d %s", code, body)
	}
	rs.Restart()
	waitReady(http.StatusOK)
}
