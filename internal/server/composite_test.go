package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/server"
)

func TestComposite(t *testing.T) {
	users := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"`+strings.TrimPrefix(r.URL.Path, "/users/")+`","name":"Alice","email":"alice@example.com","auth":"`+r.Header.Get("Authorization")[:7]+`"}`)
	})
	orders := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"items":[{"id":1,"total":12.5,"note":"x"},{"id":2,"total":99,"note":"y"}]}`)
	})
	broken := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 500) })
	ln, public := listenLocal(t)
	p, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{
		{Path: "/api/users/", Upstream: users.URL + "/", Token: "user"},
		{Path: "/api/orders/", Upstream: orders.URL + "/", Token: "user"},
		{Path: "/api/recs/", Upstream: broken.URL + "/", Token: "user"},
	}
	cfg.Composites = []config.Composite{
		{
			Path: "/bff/dashboard",
			Parts: map[string]config.Part{
				"profile": {API: "/api/users/", Path: "users/{claims.sub}", Required: true},
				"orders":  {API: "/api/orders/", Path: "recent?limit={query.limit}", Timeout: 2 * time.Second},
				"recs":    {API: "/api/recs/", Path: "top"},
			},
			Profiles: map[string]config.Profile{"mobile": {Allow: []string{"profile.name", "orders.items.id", "orders.items.total"}}},
		},
		{
			Path:    "/bff/users/{id}/summary",
			Parts:   map[string]config.Part{"profile": {API: "/api/users/", Path: "users/{path.id}", Required: true}},
			Require: &config.Require{Path: map[string]string{"id": "{claims.sub}"}},
		},
	}
	g := startGateway(t, ln, cfg, server.Options{})
	b := newBrowser(t)
	if r := b.get(g.URL+"/bff/dashboard?limit=5", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous dashboard: %d", r.StatusCode)
	}
	(&env{g: g, idp: p}).login(t, b, "alice")
	if r := b.get(g.URL + "/bff/dashboard?limit=5"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("dashboard without CSRF header: %d", r.StatusCode)
	}

	r := b.get(g.URL+"/bff/dashboard?limit=5", "X-CSRF", "1")
	var got map[string]any
	if err := json.Unmarshal([]byte(r.Body), &got); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("dashboard: %d %s", r.StatusCode, r.Body)
	}
	if prof := got["profile"].(map[string]any); prof["id"] != "alice-1" || prof["auth"] != "Bearer " {
		t.Errorf("profile part %v", prof)
	}
	if got["recs"] != nil {
		t.Errorf("failed optional part is %v, want null", got["recs"])
	}
	meta, _ := got["_meta"].(map[string]any)
	if errs, _ := meta["errors"].(map[string]any); errs["recs"] == nil {
		t.Errorf("_meta %v lacks the failed part", got["_meta"])
	}
	if q := orders.Requests()[0].URL.RawQuery; q != "limit=5" {
		t.Errorf("orders query %q", q)
	}
	for _, up := range []*upstream{users, orders} {
		if c := up.Requests()[0].Header.Get("Cookie"); c != "" {
			t.Errorf("cookie forwarded to a part: %q", c)
		}
	}

	m := b.get(g.URL+"/bff/dashboard?limit=5&profile=mobile", "X-CSRF", "1")
	if strings.Contains(m.Body, "email") || strings.Contains(m.Body, "note") || !strings.Contains(m.Body, `"total"`) {
		t.Errorf("mobile profile: %s", m.Body)
	}
	if r := b.get(g.URL+"/bff/dashboard?limit=5&profile=tv", "X-CSRF", "1"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown profile: %d", r.StatusCode)
	}
	// Template escaping: a query value cannot add parameters or segments.
	b.get(g.URL+"/bff/dashboard?limit="+"5%26admin%3Dtrue", "X-CSRF", "1")
	last := orders.Requests()[len(orders.Requests())-1]
	if last.URL.Query().Get("admin") != "" || last.URL.Query().Get("limit") != "5&admin=true" {
		t.Errorf("injected query: %q", last.URL.RawQuery)
	}

	// Object-level authorization: only one's own id, upstream not called otherwise.
	n := len(users.Requests())
	if r := b.get(g.URL+"/bff/users/alice-1/summary", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("own summary: %d %s", r.StatusCode, r.Body)
	}
	for _, path := range []string{"/bff/users/bob-1/summary", "/bff/users/alice-1%2F..%2Fbob-1/summary", "/bff/users/ALICE-1/summary"} {
		if r := b.get(g.URL+path, "X-CSRF", "1"); r.StatusCode != http.StatusForbidden && r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", path, r.StatusCode)
		}
	}
	if got := len(users.Requests()) - n; got != 1 {
		t.Errorf("users upstream called %d times, want 1 (own summary only)", got)
	}
}
