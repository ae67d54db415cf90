package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireTool fails in CI (and whenever CLOAKROOM_REQUIRE_INTEGRATION is
// set) and skips elsewhere when an integration dependency is missing.
func requireTool(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath(path); err == nil {
		return
	}
	if os.Getenv("CI") != "" || os.Getenv("CLOAKROOM_REQUIRE_INTEGRATION") != "" {
		t.Fatalf("%s is missing; run `make deps`", path)
	}
	t.Skipf("%s is missing; run `make deps` (CI fails instead of skipping)", path)
}

// browserDriver returns the absolute path of e2e/browser/<script> and the
// Chromium to drive, after requireTool's checks of Chromium, node and the
// driver's playwright-core.
func browserDriver(t *testing.T, script string) (driver, chromium string) {
	t.Helper()
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	requireTool(t, chromium)
	requireTool(t, "node")
	driver, err := filepath.Abs(filepath.Join("../../e2e/browser", script))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(driver), "node_modules", "playwright-core")); err != nil {
		if os.Getenv("CI") != "" || os.Getenv("CLOAKROOM_REQUIRE_INTEGRATION") != "" {
			t.Fatal("playwright-core is not installed; run `make deps`")
		}
		t.Skip("playwright-core is not installed; run `make deps`")
	}
	return driver, chromium
}

type evidence struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	// AdminLoginForm: in the frontends flow, whether the provider showed
	// its form for the admin console's first sign-in.
	AdminLoginForm bool `json:"adminLoginForm"`
	Steps          []struct {
		Name           string          `json:"name"`
		State          string          `json:"state"`
		DocumentCookie string          `json:"documentCookie"`
		LocalStorage   json.RawMessage `json:"localStorage"`
		SessionStorage json.RawMessage `json:"sessionStorage"`
		ClaimsText     string          `json:"claimsText"`
		APIText        string          `json:"apiText"`
		APIStatus      *int            `json:"apiStatus"`
		ContextCookies []struct {
			Name     string `json:"name"`
			Domain   string `json:"domain"`
			Path     string `json:"path"`
			HTTPOnly bool   `json:"httpOnly"`
			Secure   bool   `json:"secure"`
			SameSite string `json:"sameSite"`
		} `json:"contextCookies"`
	} `json:"steps"`
	ConsoleErrors []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"consoleErrors"`
}

// browserRun starts the demo on store and drives it in Chromium as user;
// it returns the evidence and the tokens the provider issued.
func browserRun(t *testing.T, store, user string) (evidence, string, []string) {
	t.Helper()
	return driveDemo(t, store, user, "demo", 3)
}

// driveDemo starts the demo on store and runs demo.mjs's flow in Chromium
// as user, expecting steps steps; it returns the evidence and the tokens
// the provider issued.
func driveDemo(t *testing.T, store, user, flow string, steps int) (evidence, string, []string) {
	t.Helper()
	driver, chromium := browserDriver(t, "demo.mjs")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d, err := startDemo(ctx, demoSettings{store: store}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "evidence.json")
	cctx, ccancel := context.WithTimeout(ctx, 90*time.Second)
	defer ccancel()
	cmd := exec.CommandContext(cctx, "node", driver, "--url", d.URL+"/", "--out", out, "--flow", flow)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium, "DEMO_USERNAME="+user, "DEMO_PASSWORD="+user)
	logs, err := cmd.CombinedOutput()
	raw, rerr := os.ReadFile(out)
	if err != nil {
		t.Fatalf("browser run failed: %v\n%s\nevidence: %.4000s", err, logs, raw)
	}
	if rerr != nil {
		t.Fatal(rerr)
	}
	var ev evidence
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	if !ev.OK || len(ev.Steps) != steps {
		t.Fatalf("browser run not ok (%d steps, want %d): %s", len(ev.Steps), steps, ev.Error)
	}
	return ev, string(raw), d.Backends.IdP.IssuedTokens()
}

// TestCookieModeInChromium: with the cookie store, carol's large tokens
// travel sealed in several chunk cookies; sign-in works in a real browser
// and sign-out clears every chunk.
func TestCookieModeInChromium(t *testing.T) {
	ev, raw, issued := browserRun(t, "cookie", "carol")
	chunks := func(step int) (n int) {
		for _, c := range ev.Steps[step].ContextCookies {
			if strings.HasPrefix(c.Name, "__Host-Http-cloakroom-shop.") {
				n++
				if !c.HTTPOnly || !c.Secure || c.SameSite != "Strict" {
					t.Errorf("chunk %s attributes: %+v", c.Name, c)
				}
			}
		}
		return n
	}
	if n := chunks(0); n < 2 {
		t.Errorf("signed in with %d chunk cookies, want several", n)
	}
	if n := chunks(2); n != 0 {
		t.Errorf("%d chunk cookies left after sign-out", n)
	}
	if ev.Steps[0].State != "signed-in" || !strings.Contains(ev.Steps[0].ClaimsText, "carol-0001") {
		t.Errorf("signed-in step: %q", ev.Steps[0].ClaimsText)
	}
	assertNoTokens(t, raw, issued)
}

// TestDemoInChromium drives the demo in real Chromium: sign in at the
// development provider, see the claims and an API result, sign out. The
// page's cookies, storage and every response it received are checked for
// the tokens the provider issued.
func TestDemoInChromium(t *testing.T) {
	ev, raw, issued := browserRun(t, "memory", "alice")
	in, exch, outStep := ev.Steps[0], ev.Steps[1], ev.Steps[2]
	if !strings.Contains(exch.APIText, `"sub": "alice-0001"`) || !strings.Contains(exch.APIText, "demo-inventory") {
		t.Errorf("exchanged-token call: %s", exch.APIText)
	}
	if in.State != "signed-in" || !strings.Contains(in.ClaimsText, "alice-0001") {
		t.Errorf("signed-in step: state %q, claims %q", in.State, in.ClaimsText)
	}
	if in.APIStatus == nil || *in.APIStatus != 200 || !strings.Contains(in.APIText, `"cookie_received": false`) || !strings.Contains(in.APIText, `"sub": "alice-0001"`) {
		t.Errorf("API result %v: %s", in.APIStatus, in.APIText)
	}
	if outStep.State != "signed-out" {
		t.Errorf("after sign-out: state %q", outStep.State)
	}
	var session bool
	for _, c := range in.ContextCookies {
		if c.Name == "__Host-Http-cloakroom-shop" {
			session = true
			if !c.HTTPOnly || !c.Secure || c.SameSite != "Strict" {
				t.Errorf("session cookie attributes: %+v", c)
			}
		}
	}
	if !session {
		t.Error("no session cookie in the browser after sign-in")
	}
	for _, s := range ev.Steps {
		if strings.Contains(s.DocumentCookie, "cloakroom") {
			t.Errorf("%s: document.cookie shows the session cookie: %q", s.Name, s.DocumentCookie)
		}
	}
	for _, c := range ev.ConsoleErrors {
		if c.Type == "csp" || c.Type == "pageerror" {
			t.Errorf("browser %s error: %s", c.Type, c.Text)
		}
	}
	assertNoTokens(t, raw, issued)
}

// TestDemoFrontendsInChromium drives the demo's two frontends, the shop at
// / and the admin console at /admin/, in one browser: a shop session does
// not sign anyone in to the console; each has its own cookie; the console's
// API admits alice (role admin) and refuses bob with 403; ending the
// console's session at the gateway leaves the shop's; the console's logout
// through the provider ends the shop's session too, by the provider's
// back-channel logout (single logout of the provider session both share).
func TestDemoFrontendsInChromium(t *testing.T) {
	ev, raw, issued := driveDemo(t, "memory", "alice", "frontends", 10)
	byName := map[string]int{}
	for i, s := range ev.Steps {
		byName[s.Name] = i
	}
	type cookie struct{ path, sameSite string }
	tests := []struct {
		step, state, sub string
		api              int // 0: not called
		cookies          map[string]cookie
	}{
		{"shop-signed-in", "signed-in", "alice-0001", 0, map[string]cookie{"__Host-Http-cloakroom-shop": {"/", "Strict"}}},
		{"admin-signed-out", "signed-out", "", 0, map[string]cookie{"__Host-Http-cloakroom-shop": {"/", "Strict"}}},
		{"admin-signed-in", "signed-in", "alice-0001", 200, map[string]cookie{"__Host-Http-cloakroom-shop": {"/", "Strict"}, "__Secure-Http-cloakroom-admin": {"/admin/", "Strict"}}},
		{"shop-after-admin-login", "signed-in", "alice-0001", 0, nil},
		{"admin-after-gateway-logout", "signed-out", "", 0, map[string]cookie{"__Host-Http-cloakroom-shop": {"/", "Strict"}}},
		{"shop-after-admin-logout", "signed-in", "alice-0001", 200, map[string]cookie{"__Host-Http-cloakroom-shop": {"/", "Strict"}}},
		{"admin-after-logout", "signed-out", "", 0, nil},
		{"shop-after-provider-logout", "signed-out", "", 0, nil},
		{"admin-other-user", "signed-in", "bob-0001", 403, map[string]cookie{"__Secure-Http-cloakroom-admin": {"/admin/", "Strict"}}},
		{"shop-other-user", "signed-out", "", 0, map[string]cookie{"__Secure-Http-cloakroom-admin": {"/admin/", "Strict"}}},
	}
	for _, tt := range tests {
		i, ok := byName[tt.step]
		if !ok {
			t.Errorf("no step %q", tt.step)
			continue
		}
		s := ev.Steps[i]
		if s.State != tt.state || !strings.Contains(s.ClaimsText, tt.sub) {
			t.Errorf("%s: state %q with claims %q, want %q with %q", tt.step, s.State, s.ClaimsText, tt.state, tt.sub)
		}
		if tt.api != 0 && (s.APIStatus == nil || *s.APIStatus != tt.api) {
			t.Errorf("%s: API answered %v: %s; want %d", tt.step, s.APIStatus, s.APIText, tt.api)
		}
		if strings.Contains(s.DocumentCookie, "cloakroom") {
			t.Errorf("%s: document.cookie shows a session cookie: %q", tt.step, s.DocumentCookie)
		}
		if tt.cookies == nil {
			continue
		}
		got := map[string]cookie{}
		for _, c := range s.ContextCookies {
			if strings.Contains(c.Name, "Http-cloakroom") {
				got[c.Name] = cookie{c.Path, c.SameSite}
				if !c.HTTPOnly || !c.Secure {
					t.Errorf("%s: cookie %s is not HttpOnly and Secure: %+v", tt.step, c.Name, c)
				}
			}
		}
		if !maps.Equal(got, tt.cookies) {
			t.Errorf("%s: session cookies %v, want %v", tt.step, got, tt.cookies)
		}
	}
	admin := ev.Steps[byName["admin-signed-in"]].APIText
	if !strings.Contains(admin, `"role": "admin"`) || !strings.Contains(admin, "hello from the admin API") {
		t.Errorf("admin API as alice: %s", admin)
	}
	t.Logf("the provider showed its form for the admin console's first sign-in: %v", ev.AdminLoginForm)
	for _, c := range ev.ConsoleErrors {
		if c.Type == "csp" || c.Type == "pageerror" {
			t.Errorf("browser %s error: %s", c.Type, c.Text)
		}
	}
	assertNoTokens(t, raw, issued)
}

// assertNoTokens checks the browser's evidence for the provider's tokens.
func assertNoTokens(t *testing.T, raw string, issued []string) {
	t.Helper()
	if len(issued) < 3 {
		t.Fatalf("provider issued %d tokens, want access, refresh and ID tokens", len(issued))
	}
	// Access and refresh tokens never reach the browser. The ID token goes
	// to the provider once, as id_token_hint in the end-session redirect
	// after the session is gone (OIDC RP-Initiated Logout), and nowhere else.
	for _, tok := range issued {
		all := strings.Count(raw, tok)
		if all == 0 {
			continue
		}
		if isIDToken(t, tok) && all == strings.Count(raw, "id_token_hint="+tok) {
			continue
		}
		kind := "an access or refresh token"
		if isIDToken(t, tok) {
			kind = "the ID token (outside the logout hint)"
		}
		t.Errorf("%s reached the browser (document.cookie, storage or a response)", kind)
	}
}

// isIDToken reports whether tok is a JWT whose header is not typed as an
// access token (RFC 9068's at+jwt).
func isIDToken(t *testing.T, tok string) bool {
	head, _, ok := strings.Cut(tok, ".")
	if !ok {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if json.Unmarshal(b, &h) != nil {
		return false
	}
	return !strings.EqualFold(h.Typ, "at+jwt")
}

// TestSilentLoginInChromium: with the provider still signed in, a hidden
// iframe signs the user back in without a page; signed out everywhere, it
// reports isLoggedIn false, without an error page.
func TestSilentLoginInChromium(t *testing.T) {
	driver, chromium := browserDriver(t, "silent.mjs")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The provider on the gateway's site: Chromium withholds third-party
	// cookies, so a cross-site provider's session is invisible to any
	// iframe, whatever the gateway does.
	d, err := startDemo(ctx, demoSettings{store: "memory", providerHost: "localhost"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "silent.json")
	cctx, ccancel := context.WithTimeout(ctx, 90*time.Second)
	defer ccancel()
	cmd := exec.CommandContext(cctx, "node", driver, "--url", d.URL+"/", "--out", out)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	logs, err := cmd.CombinedOutput()
	raw, _ := os.ReadFile(out)
	if err != nil {
		t.Fatalf("silent run: %v\n%s\n%s", err, logs, raw)
	}
	var res struct {
		CookiesAfterClear   []string
		SignedIn, SignedOut struct {
			Data struct {
				Source     string
				IsLoggedIn bool
			}
			Origin     string
			Title      string
			UserStatus int
			Error      string
		}
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	for _, c := range res.CookiesAfterClear {
		if strings.HasPrefix(c, "__Host-Http-cloakroom") {
			t.Fatalf("the gateway cookie was not cleared: %v", res.CookiesAfterClear)
		}
	}
	in, out2 := res.SignedIn, res.SignedOut
	if in.Error != "" || !in.Data.IsLoggedIn || in.Origin != d.URL || in.UserStatus != 200 {
		t.Errorf("silent login with the provider signed in: %+v (cookies left: %v)", in, res.CookiesAfterClear)
	}
	if out2.Error != "" || out2.Data.IsLoggedIn || out2.Origin != d.URL || out2.UserStatus != 401 || out2.Title != "Silent login" {
		t.Errorf("silent login signed out everywhere: %+v", out2)
	}
}
