package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/server"
)

// requireBrowser fails in CI (and with CLOAKROOM_REQUIRE_INTEGRATION) and
// skips elsewhere when Chromium, node or playwright-core is missing.
func requireBrowser(t *testing.T) (chromium, driverDir string) {
	t.Helper()
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	driverDir, _ = filepath.Abs("../../e2e/browser")
	missing := ""
	if _, err := os.Stat(chromium); err != nil {
		missing = chromium
	} else if _, err := exec.LookPath("node"); err != nil {
		missing = "node"
	} else if _, err := os.Stat(filepath.Join(driverDir, "node_modules", "playwright-core")); err != nil {
		missing = "playwright-core"
	}
	if missing != "" {
		if os.Getenv("CI") != "" || os.Getenv("CLOAKROOM_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("%s is missing; run `make deps`", missing)
		}
		t.Skipf("%s is missing; run `make deps` (CI fails instead of skipping)", missing)
	}
	return chromium, driverDir
}

// evilPage attacks app from another site: credentialed fetches with and
// without the CSRF header, form posts of every simple encoding, a
// WebSocket, and (last) a top-level navigation to an API route.
const evilPage = `<!doctype html><html><body>
<iframe name="sink" style="display:none"></iframe>
<script>
const app = %q;
const out = window.attackResults = {};
async function attempt(name, fn) {
  try { out[name] = await fn(); } catch (e) { out[name] = 'blocked: ' + e.name; }
}
function post(enctype, body) {
  return new Promise((resolve) => {
    const f = document.createElement('form');
    f.method = 'POST'; f.action = app + '/api/orders/form-' + enctype.replace(/\W/g, ''); f.enctype = enctype; f.target = 'sink';
    const i = document.createElement('input'); i.name = 'x'; i.value = body; f.appendChild(i);
    document.body.appendChild(f); f.submit();
    setTimeout(() => resolve('submitted'), 700);
  });
}
(async () => {
  await attempt('fetchWithHeader', async () => (await fetch(app + '/api/orders/fetch-header', {credentials: 'include', headers: {'X-CSRF': '1'}})).status);
  await attempt('fetchNoCors', async () => { const r = await fetch(app + '/api/orders/fetch-nocors', {credentials: 'include', mode: 'no-cors'}); return 'opaque:' + r.type; });
  await attempt('fetchPost', async () => (await fetch(app + '/api/orders/fetch-post', {method: 'POST', credentials: 'include', body: 'x'})).status);
  await attempt('formUrlencoded', () => post('application/x-www-form-urlencoded', 'a'));
  await attempt('formMultipart', () => post('multipart/form-data', 'b'));
  await attempt('formTextPlain', () => post('text/plain', 'c'));
  await attempt('websocket', () => new Promise((resolve) => {
    const ws = new WebSocket(app.replace('http', 'ws') + '/api/orders/ws');
    ws.onopen = () => resolve('open');
    ws.onerror = () => resolve('error');
    setTimeout(() => resolve('timeout'), 3000);
  }));
  out.done = true;
})();
</script></body></html>`

// TestCrossSiteAttacksInChromium: a page on another site, in the browser
// of a signed-in user, never gets an upstream called or a response read.
func TestCrossSiteAttacksInChromium(t *testing.T) {
	chromium, dir := requireBrowser(t)
	up := newUpstream(t, nil)
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: up.URL + "/", Token: "user"}}
	g := startGateway(t, ln, cfg, server.Options{})
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, evilPage, g.URL)
	}))
	t.Cleanup(evil.Close)

	out := filepath.Join(t.TempDir(), "attack.json")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "attack.mjs"), "--app", g.URL, "--evil", evil.URL+"/", "--out", out)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	logs, err := cmd.CombinedOutput()
	raw, _ := os.ReadFile(out)
	if err != nil {
		t.Fatalf("attack run: %v\n%s\n%s", err, logs, raw)
	}
	var res struct {
		OK               bool
		SameOrigin       int
		Attacks          map[string]any
		NavigationStatus int
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.SameOrigin != 200 {
		t.Fatalf("the session does not work from its own origin (%d); the attacks prove nothing", res.SameOrigin)
	}
	t.Logf("attack outcomes in the browser: %v", res.Attacks)
	if v := res.Attacks["fetchWithHeader"]; v != "blocked: TypeError" {
		t.Errorf("credentialed cross-site fetch with the CSRF header: %v, want blocked by CORS", v)
	}
	if v := res.Attacks["websocket"]; v == "open" {
		t.Error("a cross-site WebSocket opened")
	}
	// The same-origin call reached the upstream; nothing else did.
	reqs := up.Requests()
	for _, r := range reqs {
		if r.URL.Path != "/x" {
			t.Errorf("a cross-site attempt reached the upstream: %s %s", r.Method, r.URL.Path)
		}
	}
	// A top-level navigation cannot add the header.
	if res.NavigationStatus != http.StatusUnauthorized {
		t.Errorf("top-level navigation to an API route: %d, want 401", res.NavigationStatus)
	}
	if len(reqs) != 1 {
		t.Errorf("upstream saw %d requests, want only the same-origin one", len(reqs))
	}
}
