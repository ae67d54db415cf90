package server_test

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/server"
)

// TestShutdownDelay: once shutdown begins /readyz answers 503 with the
// check "draining"; with shutdown_delay the public listener keeps
// accepting and answering new connections until the delay ends (by
// itself, or at a second signal), then closes; the request in flight
// finishes either way.
func TestShutdownDelay(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration
		hurry bool // end the delay with a second signal
	}{
		{"no delay: drain at once", 0, false},
		{"delay ends by itself", 200 * time.Millisecond, false},
		{"second signal ends the delay", time.Hour, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			arrived := make(chan struct{})
			release := make(chan struct{})
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			slow := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/x") {
					close(arrived)
					<-release
				}
				w.Write([]byte("done"))
			})
			aln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln, public := listenLocal(t)
			_, srv := demoProvider(t, public, nil)
			cfg := baseConfig(public, srv.URL, "web", "web-secret")
			cfg.APIs = []config.API{{Path: "/slow/", Upstream: slow.URL, Token: "none"}}
			cfg.ShutdownDelay = tc.delay
			hurry := make(chan struct{})
			g := startGateway(t, ln, cfg, server.Options{AdminListener: aln, DrainTimeout: 10 * time.Second, Hurry: hurry})
			t.Cleanup(unblock) // before g.Stop, which waits for the request
			ready := func() (int, string) {
				r := newBrowser(t).get("http://" + aln.Addr().String() + "/readyz")
				return r.StatusCode, r.Body
			}
			if code, body := ready(); code != http.StatusOK || strings.Contains(body, "draining") {
				t.Fatalf("before shutdown: /readyz %d %s", code, body)
			}
			got := make(chan response, 1)
			go func() { got <- newBrowser(t).get(g.URL+"/slow/x", "X-CSRF", "1") }()
			select {
			case <-arrived:
			case r := <-got:
				t.Fatalf("slow request: %d %q", r.StatusCode, r.Body)
			}
			stopped := make(chan struct{})
			go func() { g.Stop(); close(stopped) }()

			// /readyz turns 503 as soon as Run sees the signal.
			for deadline := time.Now().Add(5 * time.Second); ; {
				code, body := ready()
				if code == http.StatusServiceUnavailable && strings.Contains(body, `"draining"`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("/readyz never reported draining: %d %s", code, body)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if tc.hurry {
				// Each request on a connection of its own: the listener
				// still accepts, and the gateway still answers.
				for i := range 3 {
					c := noRedirect(nil)
					c.Transport = &http.Transport{DisableKeepAlives: true}
					resp, err := c.Get(g.URL + "/bff/login")
					if err != nil {
						t.Fatalf("request %d during shutdown_delay: %v", i, err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusFound {
						t.Fatalf("request %d during shutdown_delay: %d, want %d", i, resp.StatusCode, http.StatusFound)
					}
				}
				if code, body := ready(); code != http.StatusServiceUnavailable {
					t.Errorf("during shutdown_delay: /readyz %d %s", code, body)
				}
				close(hurry)
			}

			// Then the listener closes, while the request in flight holds
			// the drain open.
			for deadline := time.Now().Add(10 * time.Second); ; {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					break
				}
				c.Close()
				if time.Now().After(deadline) {
					t.Fatal("still accepting connections after shutdown_delay")
				}
				time.Sleep(10 * time.Millisecond)
			}
			select {
			case <-stopped:
				t.Fatal("shutdown finished before the in-flight request")
			default:
			}
			if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, `"draining"`) {
				t.Errorf("while draining: /readyz %d %s", code, body)
			}
			unblock()
			if r := <-got; r.StatusCode != http.StatusOK || r.Body != "done" {
				t.Errorf("in-flight request: got %d %q, want 200 %q", r.StatusCode, r.Body, "done")
			}
			<-stopped
		})
	}
}
