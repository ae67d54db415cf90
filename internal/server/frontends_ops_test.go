package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/server"
)

// opsEnv is what the operations tests look at: the admin listener and
// the access log of a running gateway.
type opsEnv struct {
	adminURL string
	access   *syncBuffer
}

func newOpsEnv(t *testing.T) (*opsEnv, server.Options) {
	t.Helper()
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &opsEnv{adminURL: "http://" + aln.Addr().String(), access: &syncBuffer{}}
	return o, server.Options{AdminListener: aln, AccessLog: o.access}
}

// admin calls the admin listener, with the admin token.
func (o *opsEnv) admin(t *testing.T, path string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, o.adminURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	return newBrowser(t).do(req)
}

// ready is /readyz: its status and its checks.
func (o *opsEnv) ready(t *testing.T) (int, map[string]string) {
	t.Helper()
	r := o.admin(t, "/readyz")
	var body struct {
		Ready  bool
		Checks map[string]string
	}
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
		t.Fatalf("/readyz: %d %s", r.StatusCode, r.Body)
	}
	if body.Ready != (r.StatusCode == http.StatusOK) {
		t.Errorf("/readyz: status %d with ready %v", r.StatusCode, body.Ready)
	}
	return r.StatusCode, body.Checks
}

// metric waits until the samples of name with labels add up to want (a
// request's metrics are recorded after its response has gone), and
// reports what they add up to when they never do.
func (o *opsEnv) metric(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	var got float64
	for range 250 {
		r := newBrowser(t).get(o.adminURL + "/metrics")
		if got = metricValue(t, r.Body, name, labels...); got == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%s%v = %v, want %v", name, labels, got, want)
}

// line is the access-log line of the request r answered, found by its
// X-Request-Id (lines are written after the response has gone).
func (o *opsEnv) line(t *testing.T, r response) map[string]any {
	t.Helper()
	id := r.Header.Get("X-Request-Id")
	if id == "" {
		t.Fatalf("no X-Request-Id on %s", r.Request.URL)
	}
	for range 250 {
		for l := range strings.Lines(o.access.String()) {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("access log: not JSON: %v: %s", err, l)
			}
			if m["msg"] == "request" && m["request_id"] == id {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no access-log line for %s %s", r.Request.URL, id)
	return nil
}

// cloakroomCLI builds cmd/cloakroom and returns a function that runs its
// sessions command against adminURL: its output and whether it exited 0.
func cloakroomCLI(t *testing.T, adminURL string) func(args ...string) (string, bool) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cloakroom")
	build := exec.Command("go", "build", "-o", bin, "github.com/cloakroom/cloakroom/cmd/cloakroom")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return func(args ...string) (string, bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"sessions"}, append(args, "--admin", adminURL)...)...)
		cmd.Env = append(os.Environ(), "CLOAKROOM_ADMIN_TOKEN="+adminToken)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("cloakroom sessions %v: %v\n%s", args, err, out)
		}
		return string(out), err == nil
	}
}

// listedHandles are the session handles in the sessions command's output,
// each with its FRONTEND column.
func listedHandles(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "FRONTEND") || !strings.Contains(lines[0], "HANDLE") {
		t.Fatalf("no FRONTEND and HANDLE header:\n%s", out)
	}
	got := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.HasPrefix(f[1], "s:") {
			t.Fatalf("unexpected line %q in:\n%s", l, out)
		}
		got[f[1]] = f[0]
	}
	return got
}

// TestFrontendsOperations: with two frontends, the request, login,
// logout and rejection metrics, the access log, /readyz and the session
// admin API (through the API and the CLI) each name the frontend.
func TestFrontendsOperations(t *testing.T) {
	ops, o := newOpsEnv(t)
	var shop, admin string
	newFrontendsEnvWith(t, o, func(c *config.Config) { c.AdminToken = adminToken }, func(port string) (string, []string) {
		shop, admin = "http://shop.localhost:"+port+"/", "http://admin.localhost:"+port+"/"
		return fmt.Sprintf(`  - {name: shop, public_url: %q, oidc: {client_id: c0, client_secret: c0-secret}}
  - {name: admin, public_url: %q, oidc: {client_id: c1, client_secret: c1-secret}}
`, strings.TrimSuffix(shop, "/"), strings.TrimSuffix(admin, "/")), []string{shop, admin}
	})

	// /readyz checks each frontend's provider under the frontend's name.
	if code, checks := ops.ready(t); code != http.StatusOK || checks["identity_provider_shop"] != "ok" || checks["identity_provider_admin"] != "ok" || checks["identity_provider"] != "" {
		t.Errorf("/readyz: got %d %v, want 200 with identity_provider_shop and identity_provider_admin ok", code, checks)
	}

	b := loopbackBrowser(t)
	for _, base := range []string{shop, admin} {
		if r := signInAt(t, b, base, "alice"); r.StatusCode != http.StatusOK {
			t.Fatalf("sign-in at %s: %d %s", base, r.StatusCode, r.Body)
		}
	}
	bob := loopbackBrowser(t)
	if r := signInAt(t, bob, shop, "bob"); r.StatusCode != http.StatusOK {
		t.Fatalf("bob's sign-in at %s: %d %s", shop, r.StatusCode, r.Body)
	}
	shopAPI := b.get(shop+"api/orders/recent", "X-CSRF", "1")
	adminAPI := b.get(admin+"api/orders/recent", "X-CSRF", "1")
	adminNoCSRF := b.get(admin + "api/orders/recent")
	misdirected := b.get(strings.Replace(shop, "shop.", "other.", 1)+"bff/user", "X-CSRF", "1")
	for _, c := range []struct {
		r    response
		want int
	}{{shopAPI, 200}, {adminAPI, 200}, {adminNoCSRF, 401}, {misdirected, 421}} {
		if c.r.StatusCode != c.want {
			t.Fatalf("%s: got %d, want %d", c.r.Request.URL, c.r.StatusCode, c.want)
		}
	}
	_, claims := userOf(t, b, shop)
	logoutURL, _ := claims["bff:logout_url"].(string)
	logout := b.get(strings.TrimSuffix(shop, "/") + logoutURL)

	// Access log: the frontend's name on each of its lines, none on a
	// line matched to no frontend.
	for _, c := range []struct {
		r        response
		frontend string
	}{{shopAPI, "shop"}, {adminAPI, "admin"}, {adminNoCSRF, "admin"}, {logout, "shop"}, {misdirected, ""}} {
		l := ops.line(t, c.r)
		if f, ok := l["frontend"]; ok != (c.frontend != "") || ok && f != c.frontend {
			t.Errorf("access log of %s: frontend %v, want %q: %v", c.r.Request.URL, f, c.frontend, l)
		}
	}
	if l := ops.line(t, shopAPI); l["route"] != "/api/orders/" || l["session"] == nil {
		t.Errorf("access log of the shop's API call: %v", l)
	}

	// Metrics.
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"cloakroom_requests_total", []string{`frontend="shop"`, `route="/api/orders/"`, `code="200"`}, 1},
		{"cloakroom_requests_total", []string{`frontend="admin"`, `route="/api/orders/"`, `code="200"`}, 1},
		{"cloakroom_requests_total", []string{`frontend="admin"`, `route="/api/orders/"`, `code="401"`}, 1},
		{"cloakroom_requests_total", []string{`frontend="shop"`, `route="/api/orders/"`, `code="401"`}, 0},
		{"cloakroom_requests_total", []string{`frontend=""`, `route="other"`, `code="421"`}, 1},
		{"cloakroom_request_duration_seconds_count", []string{`frontend="shop"`, `route="/api/orders/"`}, 1},
		{"cloakroom_upstream_duration_seconds_count", []string{`frontend="admin"`, `route="/api/orders/"`}, 1},
		{"cloakroom_logins_total", []string{`frontend="shop"`, `stage="completed"`}, 2},
		{"cloakroom_logins_total", []string{`frontend="admin"`, `stage="completed"`}, 1},
		{"cloakroom_rejections_total", []string{`frontend="admin"`, `reason="csrf"`}, 1},
		{"cloakroom_rejections_total", []string{`frontend="shop"`, `reason="csrf"`}, 0},
		{"cloakroom_logouts_total", []string{`frontend="shop"`, `kind="user"`}, 1},
		{"cloakroom_logouts_total", []string{`frontend="admin"`, `kind="user"`}, 0},
	} {
		ops.metric(t, c.want, c.name, c.labels...)
	}

	// The session admin API, and the CLI through it: alice has one
	// session at admin, bob one at shop (alice's shop session ended).
	if r := signInAt(t, b, shop, "alice"); r.StatusCode != http.StatusOK {
		t.Fatalf("second sign-in at %s: %d %s", shop, r.StatusCode, r.Body)
	}
	var listed []struct{ Handle, Frontend, Sub string }
	if r := ops.admin(t, "/admin/sessions?sub=alice-1"); json.Unmarshal([]byte(r.Body), &listed) != nil || len(listed) != 2 {
		t.Fatalf("alice's sessions: %d %s", r.StatusCode, r.Body)
	}
	want := map[string]map[string]string{"shop": {}, "admin": {}}
	for _, s := range listed {
		if want[s.Frontend] == nil || s.Sub != "alice-1" {
			t.Fatalf("listed %+v", s)
		}
		want[s.Frontend][s.Handle] = s.Frontend
	}
	cli := cloakroomCLI(t, ops.adminURL)
	for _, name := range []string{"shop", "admin"} {
		out, ok := cli("list", "--sub", "alice-1", "--frontend", name)
		if got := listedHandles(t, out); !ok || len(got) != 1 || !maps.Equal(got, want[name]) {
			t.Errorf("sessions list --frontend %s: got %v, want %v:\n%s", name, got, want[name], out)
		}
	}
	all := maps.Clone(want["shop"])
	maps.Copy(all, want["admin"])
	out, ok := cli("list", "--sub", "alice-1")
	if got := listedHandles(t, out); !ok || len(got) != 2 || !maps.Equal(got, all) {
		t.Errorf("sessions list: got %v:\n%s", got, out)
	}
	if out, ok := cli("list", "--sub", "alice-1", "--frontend", "nope"); ok || !strings.Contains(out, "404") {
		t.Errorf("sessions list --frontend nope: exit 0 %v:\n%s", ok, out)
	}
	if out, ok := cli("revoke", "--sub", "alice-1", "--frontend", "admin"); !ok || !strings.Contains(out, "revoked 1") {
		t.Errorf("sessions revoke --frontend admin:\n%s", out)
	}
	for _, c := range []struct {
		b    *browser
		base string
		want int
	}{{b, admin, 401}, {b, shop, 200}, {bob, shop, 200}} {
		if code, _ := userOf(t, c.b, c.base); code != c.want {
			t.Errorf("/bff/user at %s after revoking alice at admin: got %d, want %d", c.base, code, c.want)
		}
	}
}

// TestFrontendsReadyzProviderDown: /readyz is 503 while one frontend's
// provider is down, and names that frontend's check; the other frontend
// signs users in meanwhile.
func TestFrontendsReadyzProviderDown(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + dead.Addr().String()
	dead.Close() // nothing answers there
	ops, o := newOpsEnv(t)
	var shop string
	newFrontendsEnvWith(t, o, nil, func(port string) (string, []string) {
		shop = "http://shop.localhost:" + port + "/"
		return fmt.Sprintf(`  - {name: shop, public_url: %q, oidc: {client_id: c0, client_secret: c0-secret}}
  - {name: admin, public_url: "http://admin.localhost:%s", oidc: {issuer: %q, client_id: c1, client_secret: c1-secret}}
`, strings.TrimSuffix(shop, "/"), port, down), []string{shop}
	})
	code, checks := ops.ready(t)
	if code != http.StatusServiceUnavailable || checks["identity_provider_shop"] != "ok" || checks["identity_provider_admin"] == "ok" || checks["identity_provider_admin"] == "" || checks["session_store"] != "ok" {
		t.Errorf("/readyz: got %d %v, want 503 with identity_provider_admin failing", code, checks)
	}
	if r := signInAt(t, loopbackBrowser(t), shop, "alice"); r.StatusCode != http.StatusOK {
		t.Errorf("sign-in at %s while admin's provider is down: %d %s", shop, r.StatusCode, r.Body)
	}
}

// TestOneFrontendOperationsUnchanged: without frontends: no access-log
// line names a frontend, the frontend label is empty (Prometheus stores
// it as absent) and /readyz's provider check is identity_provider.
func TestOneFrontendOperationsUnchanged(t *testing.T) {
	ops, o := newOpsEnv(t)
	ln, public := listenLocal(t)
	p, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: newUpstream(t, nil).URL, Token: "user"}}
	g := startGateway(t, ln, cfg, o)
	e := &env{g: g, idp: p}
	b := newBrowser(t)
	e.login(t, b, "alice")
	r := b.get(g.URL+"/api/orders/x", "X-CSRF", "1")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("API: %d %s", r.StatusCode, r.Body)
	}
	if l := ops.line(t, r); l["frontend"] != nil || l["route"] != "/api/orders/" {
		t.Errorf("access log: %v", l)
	}
	ops.metric(t, 1, "cloakroom_requests_total", `frontend=""`, `route="/api/orders/"`, `code="200"`)
	ops.metric(t, 1, "cloakroom_logins_total", `frontend=""`, `stage="completed"`)
	if code, checks := ops.ready(t); code != http.StatusOK || checks["identity_provider"] != "ok" || len(checks) != 2 {
		t.Errorf("/readyz: got %d %v, want 200 with identity_provider and session_store", code, checks)
	}
	if n := strings.Count(ops.access.String(), `"frontend"`); n != 0 {
		t.Errorf("%d access-log lines name a frontend", n)
	}
}
