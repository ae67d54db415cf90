package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/oidctest/zitadelop"
	"github.com/cloakroom/cloakroom/internal/server"
)

// fbPage is every frontend's SPA: window.app.get(path), a same-origin
// fetch with the CSRF header answering what the page's JavaScript sees.
const fbPage = `<!doctype html><html><head><meta charset="utf-8"><title>frontend</title></head><body>
<script>
window.app = {
  async get(path) {
    const r = await fetch(path, { headers: { 'X-CSRF': '1' } });
    return { status: r.status, body: await r.text() };
  },
};
</script>
</body></html>`

// fbLoopback is an HTTP client that reaches any *.localhost name at
// 127.0.0.1, as browsers resolve them (RFC 6761 §6.3), and follows no
// redirect.
func fbLoopback() *http.Client {
	var d net.Dialer
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".localhost") {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return d.DialContext(ctx, network, addr)
		}},
	}
}

// fbFrontend is one frontend of the browser test, as the script gets it.
type fbFrontend struct {
	Name   string `json:"name"`
	Base   string `json:"base"`   // public_url joined with path: "http://localhost:PORT/partner/"
	Cookie string `json:"cookie"` // its session cookie's name
	Login  struct {
		Kind     string `json:"kind"` // "demo" or "zitadel": the provider's login page
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"login"`
}

// fbPlan is what e2e/browser/frontends.mjs is asked to do.
type fbPlan struct {
	Frontends []fbFrontend `json:"frontends"`
	// Transplants put the session cookie value of From under the cookie
	// name (and attributes) of To.
	Transplants []struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"transplants"`
	Logout      string `json:"logout"`      // the frontend signed out with its bff:logout_url
	Backchannel string `json:"backchannel"` // the provider's client whose back-channel logout the control triggers
	Control     string `json:"control"`
}

// fbEvidence is what the script writes.
type fbEvidence struct {
	OK    bool
	Error string
	Steps []struct {
		Name, Frontend string
		Status         int
		Body           string
	}
	Cookies []struct {
		Name, Domain, Path, SameSite string
		Secure, HTTPOnly             bool
	}
	// Transplanted reports, by transplant ("shop in admin"), whether the
	// browser held the other frontend's value under the cookie's name.
	Transplanted map[string]bool
	Control      json.RawMessage
}

// step is the outcome of the script's step name at frontend: its status
// and, for a 200 with claims, the claims by type.
func (ev *fbEvidence) step(t *testing.T, name, frontend string) (int, map[string]any, string) {
	t.Helper()
	for _, s := range ev.Steps {
		if s.Name != name || s.Frontend != frontend {
			continue
		}
		claims := map[string]any{}
		var list []struct {
			Type  string `json:"type"`
			Value any    `json:"value"`
		}
		if s.Status == http.StatusOK && json.Unmarshal([]byte(s.Body), &list) == nil {
			for _, c := range list {
				claims[c.Type] = c.Value
			}
		}
		return s.Status, claims, s.Body
	}
	t.Fatalf("the browser script has no step %q at %s", name, frontend)
	return 0, nil, ""
}

// fbControl is the control server's answer to POST /backchannel.
type fbControl struct {
	// Deliveries are the provider's back-channel logout deliveries.
	Deliveries []struct{ ClientID, URI, Err string }
	// Misaddressed are the statuses of the back-channel client's logout
	// token posted to the other frontends' endpoints, by frontend.
	Misaddressed map[string]int
}

// TestFrontendsInChromium runs one gateway with four frontends in real
// Chromium: shop and admin on hosts of their own (shop.localhost and
// admin.localhost, which Chromium resolves to loopback and treats as
// secure contexts), portal at / and partner at /partner/ of localhost.
// Shop, admin and portal are clients of the demo provider, where one
// sign-in is one provider session: their sessions share the sub and the
// provider's sid. Partner is a client of zitadel's op, whose user has the
// same sub. The browser signs in to all four; each /bff/user and each
// call of the shared API route answers that frontend's own session
// (partner's also while the browser sends portal's cookie with it); a
// session cookie's value under another frontend's cookie name is refused;
// signing out of partner leaves portal (same origin) and the others
// signed in; the demo provider's back-channel logout for admin's client
// (the only one that registered a back-channel URI) ends admin's session
// and no other, though shop's and portal's have the same sub and sid, and
// that logout token posted to their endpoints is refused there.
func TestFrontendsInChromium(t *testing.T) {
	chromium, driverDir := requireBrowser(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	shop, admin := "http://shop.localhost:"+port+"/", "http://admin.localhost:"+port+"/"
	portal, partner := "http://localhost:"+port+"/", "http://localhost:"+port+"/partner/"
	hc := fbLoopback()

	z := zitadelop.Start(t, partner+"bff/callback", partner)
	demo, demoSrv := demoProvider(t, "", func(o *idp.Options) {
		o.Clients = nil
		for _, c := range []struct{ id, base string }{{"shop", shop}, {"admin", admin}, {"portal", portal}} {
			client := idp.Client{
				ID: c.id, Secret: c.id + "-secret",
				RedirectURIs:           []string{c.base + "bff/callback"},
				PostLogoutRedirectURIs: []string{c.base},
			}
			if c.id == "admin" {
				client.BackchannelLogoutURI = c.base + "bff/backchannel"
			}
			o.Clients = append(o.Clients, client)
		}
		// Alice is, at the demo provider, the subject zitadel's op gives
		// its user: every session of the test has one sub.
		o.Users[0].Subject = z.Subject
		o.BackchannelHTTPClient = hc
	})

	// The shared API route answers which client and subject the bearer
	// it received belongs to: the demo provider's access tokens name
	// them, and zitadel's are asked of its userinfo endpoint.
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "no bearer", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if claims, err := demo.VerifyAccessToken(tok); err == nil {
			json.NewEncoder(w).Encode(map[string]any{"client": claims["client_id"], "sub": claims["sub"]})
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, z.UserinfoEndpoint, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			http.Error(w, "userinfo unreachable", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var info struct {
			Sub string `json:"sub"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&info) != nil {
			http.Error(w, "not a token of either provider", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"client": "zitadel:" + z.ClientID, "sub": info.Sub})
	})

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(fbPage), 0o644); err != nil {
		t.Fatal(err)
	}
	origin := func(base string) string { return strings.TrimSuffix(base, "/") }
	data := fmt.Sprintf(`oidc:
  issuer: %s
session:
  store: memory
  keys: [%q]
frontend: {dir: %q}
apis:
  - {path: /api/whoami/, upstream: %q, token: user}
frontends:
  - {name: shop, public_url: %q, oidc: {client_id: shop, client_secret: shop-secret}}
  - {name: admin, public_url: %q, oidc: {client_id: admin, client_secret: admin-secret}}
  - {name: portal, public_url: %q, oidc: {client_id: portal, client_secret: portal-secret}}
  - name: partner
    public_url: %q
    path: /partner/
    oidc: {issuer: %q, client_id: %q, client_secret: %q}
`, demoSrv.URL, testKey, dir, up.URL+"/", origin(shop), origin(admin), origin(portal), origin(portal), z.Issuer, z.ClientID, z.ClientSecret)
	cfg, err := config.Parse("cloakroom.yaml", []byte(data), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cookies := map[string]string{}
	for _, a := range cfg.Apps() {
		cookies[a.Name] = a.Session.CookieName
	}
	g := runGateway(t, ln, cfg, server.Options{})
	for _, base := range []string{shop, admin, portal, partner} {
		fbWaitReady(t, hc, base, g)
	}

	// The script's hook into the test: the demo provider's back-channel
	// logout for one client, then that client's logout token posted to
	// the other frontends of the provider.
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method+" "+r.URL.Path != "POST /backchannel" {
			http.NotFound(w, r)
			return
		}
		client, sub, sid := r.URL.Query().Get("client"), r.URL.Query().Get("sub"), r.URL.Query().Get("sid")
		if client != "admin" || sid == "" || sub == "" {
			http.Error(w, "want client=admin, sub and sid", http.StatusBadRequest)
			return
		}
		before := len(demo.BackchannelDeliveries())
		demo.LogoutSID(sid)
		demo.WaitBackchannel()
		var out fbControl
		for _, d := range demo.BackchannelDeliveries()[before:] {
			out.Deliveries = append(out.Deliveries, struct{ ClientID, URI, Err string }{d.ClientID, d.URI, d.Err})
		}
		out.Misaddressed = map[string]int{}
		for name, base := range map[string]string{"shop": shop, "portal": portal} {
			tok, err := demo.SignLogoutToken(client, sub, sid)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			resp, err := hc.PostForm(base+"bff/backchannel", url.Values{"logout_token": {tok}})
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			out.Misaddressed[name] = resp.StatusCode
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(ctl.Close)

	plan := fbPlan{Logout: "partner", Backchannel: "admin", Control: ctl.URL}
	for _, f := range []struct{ name, base, kind, user, pass string }{
		{"shop", shop, "demo", "alice", "alice"},
		{"admin", admin, "demo", "alice", "alice"},
		{"portal", portal, "demo", "alice", "alice"},
		{"partner", partner, "zitadel", z.Username, z.Password},
	} {
		fe := fbFrontend{Name: f.name, Base: f.base, Cookie: cookies[f.name]}
		fe.Login.Kind, fe.Login.Username, fe.Login.Password = f.kind, f.user, f.pass
		plan.Frontends = append(plan.Frontends, fe)
	}
	for _, tr := range [][2]string{{"shop", "admin"}, {"portal", "partner"}, {"partner", "portal"}} {
		plan.Transplants = append(plan.Transplants, struct {
			From string `json:"from"`
			To   string `json:"to"`
		}{tr[0], tr[1]})
	}
	planFile, out := filepath.Join(t.TempDir(), "plan.json"), filepath.Join(t.TempDir(), "frontends.json")
	raw, _ := json.Marshal(plan)
	if err := os.WriteFile(planFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(driverDir, "frontends.mjs"), "--plan", planFile, "--out", out)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	logs, runErr := cmd.CombinedOutput()
	raw, _ = os.ReadFile(out)
	var ev fbEvidence
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("browser run: %v (%v)\n%s", runErr, err, logs)
	}
	if runErr != nil || !ev.OK {
		t.Fatalf("browser run: %v: %s\n%s\ngateway logs:\n%s", runErr, ev.Error, logs, g.Logs)
	}

	// Signed in everywhere, each frontend to its own session: one sub
	// over both providers, one provider sid over the demo provider's
	// three clients, and a logout URL of each session under its
	// frontend's path.
	users := map[string]map[string]any{}
	for _, f := range plan.Frontends {
		status, claims, body := ev.step(t, "user", f.Name)
		if status != http.StatusOK {
			t.Fatalf("/bff/user at %s after signing in: %d %s", f.Name, status, body)
		}
		users[f.Name] = claims
		if claims["sub"] != z.Subject {
			t.Errorf("%s: sub %v, want %s", f.Name, claims["sub"], z.Subject)
		}
		if lo, _ := claims["bff:logout_url"].(string); !strings.HasPrefix(lo, mustURL(f.Base).Path+"bff/logout?sid=") {
			t.Errorf("%s: bff:logout_url %q, want one under %s", f.Name, lo, mustURL(f.Base).Path)
		}
	}
	if sid := users["shop"]["sid"]; sid == nil || users["admin"]["sid"] != sid || users["portal"]["sid"] != sid {
		t.Errorf("provider sids: shop %v, admin %v, portal %v; want one (the premise of the test)", sid, users["admin"]["sid"], users["portal"]["sid"])
	}
	seen := map[any]string{}
	for name, claims := range users {
		lo := claims["bff:logout_url"]
		if other, ok := seen[lo]; ok {
			t.Errorf("%s and %s show one session (%v)", name, other, lo)
		}
		seen[lo] = name
	}
	// zitadel's ID token names its client; the demo provider's names
	// Alice.
	if users["partner"]["client_id"] != z.ClientID || users["partner"]["name"] != nil || users["portal"]["name"] != "Alice" {
		t.Errorf("partner's /bff/user shows client_id %v and name %v, portal's name %v: want zitadel's session at partner only, though the browser sends portal's cookie to /partner/ too",
			users["partner"]["client_id"], users["partner"]["name"], users["portal"]["name"])
	}
	if status, _, _ := ev.step(t, "user before sign-in", "partner"); status != http.StatusUnauthorized {
		t.Errorf("partner's /bff/user with only portal's session in the browser: %d, want 401", status)
	}

	// The shared API route forwards each frontend's own token.
	for _, f := range plan.Frontends {
		want := f.Name
		if f.Name == "partner" {
			want = "zitadel:" + z.ClientID
		}
		status, _, body := ev.step(t, "api", f.Name)
		var got struct{ Client, Sub string }
		if status != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || got.Client != want || got.Sub != z.Subject {
			t.Errorf("API at %s: %d %s, want the token of client %s for %s", f.Name, status, body, want, z.Subject)
		}
	}

	// The browser holds one session cookie a frontend: HttpOnly, Secure,
	// SameSite=Strict, __Host- at /, __Secure- with Path=/partner/.
	for _, f := range plan.Frontends {
		n := 0
		for _, c := range ev.Cookies {
			if c.Name != f.Cookie {
				continue
			}
			n++
			wantPath := mustURL(f.Base).Path
			if !c.HTTPOnly || !c.Secure || c.SameSite != "Strict" || c.Path != wantPath || c.Domain != mustURL(f.Base).Hostname() {
				t.Errorf("%s's cookie %s: HttpOnly %v, Secure %v, SameSite %s, Domain %s, Path %s; want HttpOnly, Secure, Strict, %s, %s",
					f.Name, c.Name, c.HTTPOnly, c.Secure, c.SameSite, c.Domain, c.Path, mustURL(f.Base).Hostname(), wantPath)
			}
		}
		if n != 1 {
			t.Errorf("%d cookies named %s in the browser, want 1", n, f.Cookie)
		}
	}
	if cookies["shop"] == cookies["admin"] || cookies["portal"] == cookies["partner"] {
		t.Errorf("cookie names %v: want one a frontend", cookies)
	}

	// A transplanted cookie is refused; the frontend's own, put back,
	// still works.
	for _, tr := range plan.Transplants {
		name := tr.From + " in " + tr.To
		if !ev.Transplanted[name] {
			t.Errorf("the browser did not take %s's cookie value under %s's cookie: the transplant proves nothing", tr.From, tr.To)
		}
		if status, _, _ := ev.step(t, "user with "+name, tr.To); status != http.StatusUnauthorized {
			t.Errorf("/bff/user at %s with %s's session cookie under its name: %d, want 401", tr.To, tr.From, status)
		}
		if status, _, _ := ev.step(t, "api with "+name, tr.To); status != http.StatusUnauthorized {
			t.Errorf("API at %s with %s's session cookie under its name: %d, want 401", tr.To, tr.From, status)
		}
		if status, _, _ := ev.step(t, "user restored after "+name, tr.To); status != http.StatusOK {
			t.Errorf("/bff/user at %s with its own cookie put back: %d, want 200", tr.To, status)
		}
	}

	// Signing out of partner leaves every other frontend signed in,
	// portal on the same origin included.
	for _, f := range plan.Frontends {
		want := http.StatusOK
		if f.Name == "partner" {
			want = http.StatusUnauthorized
		}
		if status, _, _ := ev.step(t, "user after partner's logout", f.Name); status != want {
			t.Errorf("/bff/user at %s after partner's logout: %d, want %d", f.Name, status, want)
		}
	}
	if z.EndSessions() != 1 {
		t.Errorf("zitadel's end-session endpoint was called %d times, want once", z.EndSessions())
	}

	// The demo provider's back-channel logout for admin's client ends
	// admin's session only; admin's logout token is refused by shop and
	// portal.
	var ctlOut fbControl
	if err := json.Unmarshal(ev.Control, &ctlOut); err != nil {
		t.Fatalf("control answer %s: %v", ev.Control, err)
	}
	if len(ctlOut.Deliveries) != 1 || ctlOut.Deliveries[0].ClientID != "admin" || ctlOut.Deliveries[0].Err != "" {
		t.Errorf("the provider's back-channel deliveries: %+v, want one to admin, accepted", ctlOut.Deliveries)
	}
	for _, name := range []string{"shop", "portal"} {
		if status := ctlOut.Misaddressed[name]; status < 400 || status > 499 {
			t.Errorf("admin's logout token at %s's back-channel endpoint: %d, want a 4xx refusal", name, status)
		}
	}
	for _, f := range plan.Frontends {
		want := http.StatusOK
		if f.Name == "admin" || f.Name == "partner" {
			want = http.StatusUnauthorized
		}
		if status, _, _ := ev.step(t, "user after admin's back-channel logout", f.Name); status != want {
			t.Errorf("/bff/user at %s after admin's back-channel logout: %d, want %d", f.Name, status, want)
		}
	}
	if status, _, body := ev.step(t, "api after admin's back-channel logout", "shop"); status != http.StatusOK || !strings.Contains(body, `"client":"shop"`) {
		t.Errorf("API at shop after admin's back-channel logout: %d %s", status, body)
	}

	// No upstream request carried another frontend's token: every one
	// came with a bearer the upstream could place.
	for _, r := range up.Requests() {
		if r.Header.Get("Cookie") != "" || r.Header.Get("X-Csrf") != "" {
			t.Errorf("the upstream saw the browser's cookie or CSRF header at %s", r.URL.Path)
		}
	}
	if n := len(up.Requests()); n != len(plan.Frontends)+1 {
		t.Errorf("the upstream saw %d requests, want %d: one a frontend, one after the back-channel logout, none with a transplanted cookie", n, len(plan.Frontends)+1)
	}
	if !slices.ContainsFunc(strings.Split(g.Logs.String(), "\n"), func(l string) bool {
		return strings.Contains(l, `"msg":"back-channel logout"`) && strings.Contains(l, `"sessions_ended":1`)
	}) {
		t.Errorf("no back-channel logout that ended one session in the gateway's logs")
	}
}

// fbWaitReady waits until base's /bff/login redirects to its provider.
func fbWaitReady(t *testing.T, hc *http.Client, base string, g *gateway) {
	t.Helper()
	for range 500 {
		if resp, err := hc.Get(base + "bff/login"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never became ready; logs:\n%s", base, g.Logs)
}
