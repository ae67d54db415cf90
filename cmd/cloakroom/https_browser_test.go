package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo"
	"github.com/cloakroom/cloakroom/internal/server"
	"github.com/cloakroom/cloakroom/internal/tlstest"
)

// TestHTTPSInChromium drives the demo served by the gateway's own HTTPS
// listener (tls.cert_file, tls.key_file, tls.redirect_http) in Chromium,
// which trusts that one certificate by its public key and no other: the
// plain listener redirects to the https origin, sign-in through the
// provider works, the document and the page's fetches go over HTTP/2,
// responses carry Strict-Transport-Security, the session cookie is a
// __Host- cookie the page cannot read, and no token reaches the page.
func TestHTTPSInChromium(t *testing.T) {
	driver, chromium := browserDriver(t, "https.mjs")

	cert := tlstest.NewCA(t, "gateway CA").Server(t, "localhost")
	spki := sha256.Sum256(cert.Cert.RawSubjectPublicKeyInfo)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "https://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	redirect := "http://localhost:" + strings.TrimPrefix(rln.Addr().String(), "127.0.0.1:") + "/"
	logFile, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(logFile, nil))

	ctx, cancel := context.WithCancel(context.Background())
	be, err := demo.StartBackends(ctx, demo.Options{PublicURL: public, Logger: log})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cfg := demoConfig(be)
	cfg.TLS = &config.TLS{CertFile: cert.CertFile, KeyFile: cert.KeyFile, RedirectHTTP: rln.Addr().String()}
	if problems := cfg.Validate(); len(problems) > 0 {
		cancel()
		t.Fatalf("config: %v", problems)
	}
	done := make(chan error, 1)
	go func() {
		defer be.Close()
		done <- server.Run(ctx, cfg, server.Options{Logger: log, Listener: ln, RedirectListener: rln, Files: map[string]fs.FS{
			demoShopFrontend:  demo.SPA(),
			demoAdminFrontend: demo.AdminSPA(),
		}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
		logFile.Close()
	})
	gatewayLogs := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }

	out := filepath.Join(t.TempDir(), "evidence.json")
	cctx, ccancel := context.WithTimeout(ctx, 90*time.Second)
	defer ccancel()
	cmd := exec.CommandContext(cctx, "node", driver, "--url", redirect, "--spki", base64.StdEncoding.EncodeToString(spki[:]), "--out", out)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	logs, err := cmd.CombinedOutput()
	raw, rerr := os.ReadFile(out)
	if err != nil {
		t.Fatalf("browser run failed: %v\n%s\nevidence: %.4000s\ngateway logs:\n%s", err, logs, raw, gatewayLogs())
	}
	if rerr != nil {
		t.Fatal(rerr)
	}
	var ev struct {
		Redirect struct {
			From, Location string
			Status         int
		}
		FinalURL           string
		NavigationProtocol string
		Fetches            []struct {
			Path, Body, Protocol string
			Status               int
		}
		DocumentCookie string
		ContextCookies []struct {
			Name, Path       string
			HTTPOnly, Secure bool
			SameSite         string
		}
		Responses []struct {
			URL     string
			Status  int
			Headers map[string]string
		}
		ConsoleErrors []string
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}

	if ev.Redirect.From != redirect || ev.Redirect.Status != 301 || ev.Redirect.Location != public+"/" || ev.FinalURL != public+"/" {
		t.Errorf("redirect %+v landing at %q, want 301 from %s to %s/", ev.Redirect, ev.FinalURL, redirect, public)
	}
	if ev.NavigationProtocol != "h2" {
		t.Errorf("document: got nextHopProtocol %q, want h2", ev.NavigationProtocol)
	}
	wantFetch := map[string]string{"/bff/user": `{"type":"sub","value":"alice-0001"}`, "/api/demo/whoami": `"sub": "alice-0001"`}
	for _, f := range ev.Fetches {
		if f.Status != 200 || !strings.Contains(f.Body, wantFetch[f.Path]) || f.Protocol != "h2" {
			t.Errorf("fetch %s: got %d over %q: %.300s; want 200 over h2 with %s", f.Path, f.Status, f.Protocol, f.Body, wantFetch[f.Path])
		}
		delete(wantFetch, f.Path)
	}
	if len(wantFetch) > 0 {
		t.Errorf("not fetched: %v", wantFetch)
	}
	var session bool
	for _, c := range ev.ContextCookies {
		if c.Name == "__Host-Http-cloakroom-shop" {
			session = true
			if !c.HTTPOnly || !c.Secure || c.Path != "/" || c.SameSite != "Strict" {
				t.Errorf("session cookie attributes: %+v", c)
			}
		}
	}
	if !session {
		t.Errorf("no __Host-Http-cloakroom-shop cookie in the browser: %+v", ev.ContextCookies)
	}
	if strings.Contains(ev.DocumentCookie, "cloakroom") {
		t.Errorf("document.cookie shows the session cookie: %q", ev.DocumentCookie)
	}
	var gateway int
	for _, r := range ev.Responses {
		if !strings.HasPrefix(r.URL, public+"/") {
			continue
		}
		gateway++
		if hsts := r.Headers["strict-transport-security"]; !strings.Contains(hsts, "max-age=") {
			t.Errorf("%s (%d): Strict-Transport-Security %q, want max-age", r.URL, r.Status, hsts)
		}
	}
	if gateway < 4 {
		t.Errorf("only %d responses from %s recorded", gateway, public)
	}
	for _, e := range ev.ConsoleErrors {
		t.Errorf("browser console: %s", e)
	}
	assertNoTokens(t, string(raw), be.IdP.IssuedTokens())
}
