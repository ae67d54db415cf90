package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// scrape is m's /metrics text.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: got %d, want 200", w.Code)
	}
	return w.Body.String()
}

// Every per-frontend instrument names the frontend; the implicit one's
// label is empty, which Prometheus stores as no label at all.
func TestFrontendLabel(t *testing.T) {
	m := New()
	for _, name := range []string{"", "shop"} {
		f := m.Frontend(name)
		m.Observe(name, "/api/", http.MethodPost, 201, time.Millisecond)
		f.Upstream("/api/", time.Millisecond)
		f.Login("failed", "state")
		f.Logout("backchannel", "ok")
		f.Refresh("ok", time.Millisecond)
		f.Rejection("csrf")
	}
	text := scrape(t, m)
	for _, want := range []string{
		`cloakroom_requests_total{code="201",frontend="",method="write",route="/api/"} 1`,
		`cloakroom_requests_total{code="201",frontend="shop",method="write",route="/api/"} 1`,
		`cloakroom_request_duration_seconds_count{frontend="",route="/api/"} 1`,
		`cloakroom_request_duration_seconds_count{frontend="shop",route="/api/"} 1`,
		`cloakroom_upstream_duration_seconds_count{frontend="",route="/api/"} 1`,
		`cloakroom_upstream_duration_seconds_count{frontend="shop",route="/api/"} 1`,
		`cloakroom_logins_total{frontend="",reason="state",stage="failed"} 1`,
		`cloakroom_logins_total{frontend="shop",reason="state",stage="failed"} 1`,
		`cloakroom_logouts_total{frontend="",kind="backchannel",result="ok"} 1`,
		`cloakroom_logouts_total{frontend="shop",kind="backchannel",result="ok"} 1`,
		`cloakroom_token_refreshes_total{frontend="",outcome="ok"} 1`,
		`cloakroom_token_refreshes_total{frontend="shop",outcome="ok"} 1`,
		`cloakroom_rejections_total{frontend="",reason="csrf"} 1`,
		`cloakroom_rejections_total{frontend="shop",reason="csrf"} 1`,
		`cloakroom_token_refresh_wait_seconds_count 2`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no line %s", want)
		}
	}
}

// The per-request instruments allocate nothing once a label set has been
// seen, whatever the frontend: the request path runs them every time.
func TestHotPathAllocs(t *testing.T) {
	m := New()
	shop := m.Frontend("shop")
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"Observe implicit", func() { m.Observe("", "/api/", http.MethodGet, 200, time.Millisecond) }},
		{"Observe shop", func() { m.Observe("shop", "/api/", http.MethodGet, 200, time.Millisecond) }},
		{"Upstream shop", func() { shop.Upstream("/api/", time.Millisecond) }},
	} {
		c.fn() // makes the children
		if got := testing.AllocsPerRun(100, c.fn); got != 0 {
			t.Errorf("%s: got %v allocations, want 0", c.name, got)
		}
	}
}
