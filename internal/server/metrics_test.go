package server_test

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/server"
)

// metricValue sums the samples of name whose labels include every given
// label="value" pair.
func metricValue(t *testing.T, text, name string, labels ...string) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		sum += v
	}
	return sum
}

func TestMetrics(t *testing.T) {
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	ln, public := listenLocal(t)
	p, srv := demoProvider(t, public, func(o *idp.Options) { o.Now = clk.Now; o.AccessTokenTTL = time.Minute })
	up := newUpstream(t, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: up.URL, Token: "user"}}
	g := startGateway(t, ln, cfg, server.Options{AdminListener: aln, Now: clk.Now})
	g.Clock = clk
	e := &env{g: g, idp: p, up: up}
	b := newBrowser(t)
	scrape := func() string {
		r := newBrowser(t).get("http://" + aln.Addr().String() + "/metrics")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %d", r.StatusCode)
		}
		return r.Body
	}

	e.login(t, b, "alice")
	b.get(g.URL+"/api/orders/x", "X-CSRF", "1")
	b.get(g.URL + "/api/orders/x") // no CSRF header
	clk.Advance(2 * time.Minute)
	b.get(g.URL+"/api/orders/x", "X-CSRF", "1") // refreshes
	location(t, b.get(g.URL+claim(t, b, g.URL, "bff:logout_url")))

	m := scrape()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"cloakroom_logins_total", []string{`stage="completed"`}, 1},
		{"cloakroom_logins_total", []string{`stage="started"`}, 2}, // the readiness probe started one
		{"cloakroom_token_refreshes_total", []string{`outcome="ok"`}, 1},
		{"cloakroom_rejections_total", []string{`reason="csrf"`}, 1},
		{"cloakroom_logouts_total", []string{`kind="user"`}, 1},
		{"cloakroom_requests_total", []string{`route="/api/orders/"`, `code="200"`}, 2},
		{"cloakroom_requests_total", []string{`route="/api/orders/"`, `code="401"`}, 1},
		{"cloakroom_upstream_duration_seconds_count", []string{`route="/api/orders/"`}, 2},
	} {
		if got := metricValue(t, m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, tok := range p.IssuedTokens() {
		if strings.Contains(m, tok) {
			t.Fatal("a token in /metrics")
		}
	}

	// Cardinality: random paths never become label values.
	before := len(regexp.MustCompile(`(?m)^cloakroom_requests_total\{`).FindAllString(m, -1))
	for i := range 200 {
		b.get(fmt.Sprintf("%s/api/orders/item-%d", g.URL, i), "X-CSRF", "1")
		b.get(fmt.Sprintf("%s/random-%d", g.URL, i))
	}
	after := len(regexp.MustCompile(`(?m)^cloakroom_requests_total\{`).FindAllString(scrape(), -1))
	if after > before+4 {
		t.Errorf("request series grew from %d to %d with random paths", before, after)
	}
}
