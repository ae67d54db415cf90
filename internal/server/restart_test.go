package server_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/server"
)

// TestSessionSurvivesRestart: sessions outlive the process on persistent
// stores, and key rotation neither logs anyone out nor keeps sessions
// sealed only under a removed key.
func TestSessionSurvivesRestart(t *testing.T) {
	for name, spec := range map[string]func(*testing.T) string{
		"file":  func(t *testing.T) string { return "file:" + t.TempDir() + "/s.db" },
		"redis": func(t *testing.T) string { return redistest.Start(t).URL },
	} {
		t.Run(name, func(t *testing.T) {
			store := spec(t)
			ln, public := listenLocal(t)
			p, srv := demoProvider(t, public, nil)
			up := newUpstream(t, nil)
			cfg := func(public string, keys ...string) *config.Config {
				c := baseConfig(public, srv.URL, "web", "web-secret")
				c.Session.Store = store
				c.Session.Keys = keys
				c.APIs = []config.API{{Path: "/api/orders/", Upstream: up.URL + "/", Token: "user"}}
				return c
			}
			g1 := startGateway(t, ln, cfg(public, testKey), server.Options{})
			e := &env{g: g1, idp: p, up: up}
			alice, bob := newBrowser(t), newBrowser(t)
			e.login(t, alice, "alice")
			e.login(t, bob, "bob")
			g1.Stop()

			// Same store, same key, a new process (a new port; cookies ignore ports).
			ln2, public2 := listenLocal(t)
			g2 := startGateway(t, ln2, cfg(public2, testKey), server.Options{})
			if r := alice.get(g2.URL+"/api/orders/x", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
				t.Fatalf("after restart: %d", r.StatusCode)
			}
			g2.Stop()

			// A new key in front: old sessions still open, and are re-sealed
			// under the new key when next used.
			newKey := "base64:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
			ln3, public3 := listenLocal(t)
			g3 := startGateway(t, ln3, cfg(public3, newKey, testKey), server.Options{})
			if r := alice.get(g3.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
				t.Fatalf("with a new key in front: %d", r.StatusCode)
			}
			g3.Stop()

			// The old key removed: alice's session (re-sealed) lives, bob's
			// (never used since) is gone, quietly.
			ln4, public4 := listenLocal(t)
			g4 := startGateway(t, ln4, cfg(public4, newKey), server.Options{})
			if r := alice.get(g4.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
				t.Errorf("re-sealed session after the old key left: %d", r.StatusCode)
			}
			if r := bob.get(g4.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("session sealed only under a removed key: %d", r.StatusCode)
			}
			for _, line := range strings.Split(g4.Logs.String(), "\n") {
				// (The readiness probe's 503 while discovery runs is expected.)
				if (strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"level":"WARN"`)) && !strings.Contains(line, `"path":"/bff/login"`) {
					t.Errorf("a session under a removed key was logged as a problem: %s", line)
				}
			}
		})
	}
}
