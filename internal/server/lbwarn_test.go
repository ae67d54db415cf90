package server_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/server"
)

// TestLoadBalancerWarning: requests that keep carrying X-Forwarded-For
// from a peer trusted_proxies does not list (here the test client on
// 127.0.0.1) log one warning naming the peer and trusted_proxies, and
// /readyz says it under "warnings" while staying 200; a listed peer, or
// requests without the header, never do.
func TestLoadBalancerWarning(t *testing.T) {
	const canary = "198.51.100.77, xff-canary-value"
	for _, tc := range []struct {
		name    string
		trusted []string
		xff     bool
		warn    bool
	}{
		{name: "untrusted peer with X-Forwarded-For", xff: true, warn: true},
		{name: "trusted peer", trusted: []string{"127.0.0.1"}, xff: true},
		{name: "trusted network", trusted: []string{"127.0.0.0/8"}, xff: true},
		{name: "no header", xff: false},
		{name: "other proxies trusted", trusted: []string{"10.0.0.0/8"}, xff: true, warn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			aln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			adminURL := "http://" + aln.Addr().String()
			ln, public := listenLocal(t)
			_, srv := demoProvider(t, public, nil)
			cfg := baseConfig(public, srv.URL, "web", "web-secret")
			cfg.TrustedProxies = tc.trusted
			g := startGateway(t, ln, cfg, server.Options{AdminListener: aln})
			b := newBrowser(t)
			for range 100 { // well past the threshold, so "once" is tested
				var hdr []string
				if tc.xff {
					hdr = []string{"X-Forwarded-For", canary}
				}
				b.get(g.URL+"/bff/user", hdr...)
			}

			var warnings []map[string]any
			for _, line := range strings.Split(g.Logs.String(), "\n") {
				var e map[string]any
				if json.Unmarshal([]byte(line), &e) != nil {
					continue
				}
				if msg, _ := e["msg"].(string); strings.Contains(msg, "X-Forwarded-For keep arriving") {
					warnings = append(warnings, e)
				}
			}
			if strings.Contains(g.Logs.String(), "xff-canary-value") || strings.Contains(g.Logs.String(), "198.51.100.77") {
				t.Error("the logs repeat the X-Forwarded-For header's contents")
			}
			want := 0
			if tc.warn {
				want = 1
			}
			if len(warnings) != want {
				t.Fatalf("got %d warnings, want %d; logs:\n%s", len(warnings), want, g.Logs)
			}
			if tc.warn {
				w := warnings[0]
				if w["level"] != "WARN" || w["peer"] != "127.0.0.1" || w["fix"] != "trusted_proxies: [127.0.0.1/32]" || !strings.Contains(w["msg"].(string), "trusted_proxies") {
					t.Errorf("got warning %v, want level WARN, peer 127.0.0.1, fix trusted_proxies: [127.0.0.1/32]", w)
				}
			}

			r := newBrowser(t).get(adminURL + "/readyz")
			var ready struct {
				Ready    bool              `json:"ready"`
				Checks   map[string]string `json:"checks"`
				Warnings map[string]string `json:"warnings"`
			}
			if err := json.Unmarshal([]byte(r.Body), &ready); err != nil {
				t.Fatalf("/readyz: %d %s: %v", r.StatusCode, r.Body, err)
			}
			if r.StatusCode != http.StatusOK || !ready.Ready || ready.Checks["identity_provider"] != "ok" {
				t.Errorf("/readyz: got %d %s, want 200 and ready", r.StatusCode, r.Body)
			}
			got := ready.Warnings["trusted_proxies"]
			switch {
			case tc.warn && (!strings.Contains(got, "127.0.0.1") || !strings.Contains(got, "trusted_proxies: [127.0.0.1/32]")):
				t.Errorf("/readyz warnings: got %q, want the peer 127.0.0.1 and the fix", got)
			case !tc.warn && strings.Contains(r.Body, "warnings"):
				t.Errorf("/readyz: got %s, want no warnings", r.Body)
			}
			if strings.Contains(r.Body, "xff-canary-value") {
				t.Error("/readyz repeats the X-Forwarded-For header's contents")
			}
		})
	}
}
