package server_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/server"
	"github.com/cloakroom/cloakroom/internal/tlstest"
)

// mtlsUpstream is an https upstream that requires a client certificate
// issued by its CA and answers {"client": "<its common name>"}. It counts
// the connections it has seen closed.
type mtlsUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	closed int
}

// newMTLSUpstream serves with a certificate for names, issued by ca, which
// also issues the client certificates it accepts.
func newMTLSUpstream(t *testing.T, ca *tlstest.CA, names ...string) *mtlsUpstream {
	t.Helper()
	u := &mtlsUpstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"client": r.TLS.PeerCertificates[0].Subject.CommonName})
	}))
	u.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t, names...).TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool,
	}
	u.Config.ErrorLog = log.New(io.Discard, "", 0) // some handshakes fail on purpose
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			u.mu.Lock()
			u.closed++
			u.mu.Unlock()
		}
	}
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

func (u *mtlsUpstream) closedConns() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closed
}

// failure returns the error the gateway logged for the failed request
// with id (its X-Request-Id).
func failure(t *testing.T, g *gateway, id string) string {
	t.Helper()
	for _, line := range strings.Split(g.Logs.String(), "\n") {
		var e struct {
			Msg       string
			RequestID string `json:"request_id"`
			Error     string
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "request failed" && e.RequestID == id {
			return e.Error
		}
	}
	t.Fatalf("no failure logged for request %q", id)
	return ""
}

func TestUpstreamTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "Upstream CA")
	client := ca.Client(t, "gateway-1")
	up := newMTLSUpstream(t, ca, "127.0.0.1")
	named := newMTLSUpstream(t, ca, "orders.internal") // reached at 127.0.0.1
	otherCA := tlstest.NewCA(t, "Other CA")
	withCert := func(c config.UpstreamTLS) *config.UpstreamTLS {
		c.CertFile, c.KeyFile = client.CertFile, client.KeyFile
		return &c
	}

	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.RateLimit = config.RateLimit{}
	route := func(path string, up *mtlsUpstream, tls *config.UpstreamTLS) config.API {
		return config.API{Path: path, Upstream: up.URL + "/v1/", Token: "none", Timeout: 10 * time.Second, TLS: tls}
	}
	cfg.APIs = []config.API{
		route("/api/mtls/", up, withCert(config.UpstreamTLS{CAFile: ca.File})),
		route("/api/plain/", up, nil),
		route("/api/no-cert/", up, &config.UpstreamTLS{CAFile: ca.File}),
		route("/api/wrong-ca/", up, withCert(config.UpstreamTLS{CAFile: otherCA.File})),
		route("/api/named/", named, withCert(config.UpstreamTLS{CAFile: ca.File, ServerName: "orders.internal"})),
		route("/api/unnamed/", named, withCert(config.UpstreamTLS{CAFile: ca.File})),
	}
	cfg.Composites = []config.Composite{{
		Path: "/bff/mtls",
		Parts: map[string]config.Part{
			"via_api": {API: "/api/mtls/", Path: "me"},
			"own":     {Upstream: up.URL + "/v1/", Token: "none", Path: "me"}, // no api: no tls settings
		},
	}}
	if p := cfg.Validate(); p != nil {
		t.Fatalf("config: %v", p)
	}
	g := startGateway(t, ln, cfg, server.Options{})
	b := newBrowser(t)

	tests := []struct {
		name, path string
		code       int
		why        string // in the logged error of a failure
	}{
		{"ca and client certificate", "/api/mtls/x", http.StatusOK, ""},
		{"no tls settings", "/api/plain/x", http.StatusBadGateway, "certificate signed by unknown authority"},
		{"no client certificate", "/api/no-cert/x", http.StatusBadGateway, "certificate required"},
		{"another CA", "/api/wrong-ca/x", http.StatusBadGateway, "certificate signed by unknown authority"},
		{"server_name", "/api/named/x", http.StatusOK, ""},
		{"certificate for another name", "/api/unnamed/x", http.StatusBadGateway, "cannot validate certificate for 127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.get(g.URL+tt.path, "X-CSRF", "1")
			if r.StatusCode != tt.code {
				t.Fatalf("got status %d, want %d; body %s", r.StatusCode, tt.code, r.Body)
			}
			if tt.code == http.StatusOK {
				if want := `{"client":"gateway-1"}` + "\n"; r.Body != want {
					t.Errorf("got body %q, want %q", r.Body, want)
				}
				return
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("got Content-Type %q, want application/problem+json", ct)
			}
			for _, leak := range []string{"x509", "tls", "certificate", "127.0.0.1", "orders.internal", "CA"} {
				if strings.Contains(r.Body, leak) {
					t.Errorf("the answer tells %q: %s", leak, r.Body)
				}
			}
			if got := failure(t, g, r.Header.Get("X-Request-Id")); !strings.Contains(got, tt.why) {
				t.Errorf("got logged error %q, want one about %q", got, tt.why)
			}
		})
	}

	t.Run("composite part inherits the api's tls", func(t *testing.T) {
		r := b.get(g.URL+"/bff/mtls", "X-CSRF", "1")
		var got struct {
			ViaAPI *struct{ Client string } `json:"via_api"`
			Own    any
			Meta   struct {
				Errors map[string]struct{ Status int } `json:"errors"`
			} `json:"_meta"`
		}
		if err := json.Unmarshal([]byte(r.Body), &got); err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("composite: %d %s", r.StatusCode, r.Body)
		}
		if got.ViaAPI == nil || got.ViaAPI.Client != "gateway-1" {
			t.Errorf("got part via_api %s, want the client certificate gateway-1", r.Body)
		}
		if got.Own != nil || got.Meta.Errors["own"].Status != http.StatusBadGateway {
			t.Errorf("got part own %v (%+v), want null with 502: a part with its own upstream has no tls settings", got.Own, got.Meta)
		}
	})
}

// TestUpstreamTLSReload: a reload reads the certificate files again; new
// connections present the new certificate and the old route's idle
// connections are closed. A reload with a file that does not load is
// refused and the running certificate stays.
func TestUpstreamTLSReload(t *testing.T) {
	ca := tlstest.NewCA(t, "Reload CA")
	first, second := ca.Client(t, "gateway-1"), ca.Client(t, "gateway-2")
	up := newMTLSUpstream(t, ca, "127.0.0.1")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	install := func(c *tlstest.Cert) {
		t.Helper()
		for src, dst := range map[string]string{c.CertFile: certFile, c.KeyFile: keyFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(first)

	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	cfgFile := filepath.Join(dir, "cloakroom.yaml")
	writeConfig := func(keyFile string) {
		t.Helper()
		yaml := fmt.Sprintf(`public_url: %s
oidc: {issuer: %s, client_id: web, client_secret: web-secret}
session: {store: memory, keys: ['%s']}
rate_limit: {api_per_second: 0}
apis:
  - path: /api/mtls/
    upstream: %s/v1/
    token: none
    tls: {ca_file: %s, cert_file: %s, key_file: %s}
`, public, srv.URL, testKey, up.URL, ca.File, certFile, keyFile)
		if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(keyFile)
	load := func() (*config.Config, error) { return config.Load(cfgFile, nil) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	reload := make(chan struct{})
	var loadOverride func() (*config.Config, error) // set between reloads only
	g := startGateway(t, ln, cfg, server.Options{Reload: reload, LoadConfig: func() (*config.Config, error) {
		if loadOverride != nil {
			return loadOverride()
		}
		return load()
	}})
	b := newBrowser(t)
	client := func() string {
		t.Helper()
		r := b.get(g.URL+"/api/mtls/x", "X-CSRF", "1")
		var got struct{ Client string }
		if err := json.Unmarshal([]byte(r.Body), &got); err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("got %d %s, want 200", r.StatusCode, r.Body)
		}
		return got.Client
	}
	// swap reloads and returns what the gateway logged about it.
	swap := func() string {
		t.Helper()
		before := g.Logs.String()
		n := strings.Count(before, "configuration reload")
		reload <- struct{}{}
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(g.Logs.String(), "configuration reload") == n {
			if time.Now().After(deadline) {
				t.Fatal("reload never finished")
			}
			time.Sleep(5 * time.Millisecond)
		}
		return strings.TrimPrefix(g.Logs.String(), before)
	}

	if got := client(); got != "gateway-1" {
		t.Fatalf("got client certificate %q, want gateway-1", got)
	}
	if n := up.closedConns(); n != 0 {
		t.Fatalf("got %d upstream connections closed before any reload, want 0", n)
	}

	install(second)
	if l := swap(); !strings.Contains(l, "configuration reloaded") {
		t.Fatalf("reload with a renewed certificate: %s", l)
	}
	if got := client(); got != "gateway-2" {
		t.Errorf("after the reload: got client certificate %q, want gateway-2", got)
	}
	// The connection opened with gateway-1 is not left open for reuse.
	deadline := time.Now().Add(10 * time.Second)
	for up.closedConns() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the old route's idle connection was never closed")
		}
		time.Sleep(5 * time.Millisecond)
	}

	refusals := []struct {
		name   string
		before func()
		why    string
	}{
		{"key file garbled", func() {
			if err := os.WriteFile(keyFile, []byte("garbage-key-material"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "apis[0].tls.key_file"},
		{"key file missing", func() { writeConfig(filepath.Join(dir, "missing.key")) }, "apis[0].tls.key_file: cannot read the file: it does not exist"},
		// A configuration made in code skips the file's checks; building
		// the gateway refuses it all the same.
		{"key file missing at build", func() {
			loadOverride = func() (*config.Config, error) {
				c := baseConfig(public, srv.URL, "web", "web-secret")
				c.APIs = []config.API{{Path: "/api/mtls/", Upstream: up.URL + "/v1/", Token: "none",
					TLS: &config.UpstreamTLS{CAFile: ca.File, CertFile: certFile, KeyFile: filepath.Join(dir, "missing.key")}}}
				return c, nil
			}
		}, `apis \"/api/mtls/\": tls: cert_file and key_file`},
	}
	for _, rf := range refusals {
		rf.before()
		l := swap()
		if !strings.Contains(l, "configuration reload refused") || !strings.Contains(l, rf.why) {
			t.Errorf("%s: got %s, want the reload refused because of %s", rf.name, l, rf.why)
		}
		if got := client(); got != "gateway-2" {
			t.Errorf("%s: after the refused reload got client certificate %q, want gateway-2", rf.name, got)
		}
	}
	for _, secret := range []string{"garbage-key-material", "PRIVATE KEY"} {
		if strings.Contains(g.Logs.String(), secret) {
			t.Errorf("the logs show %q", secret)
		}
	}

	// Fixed files are taken up by the next reload.
	loadOverride = nil
	install(first)
	writeConfig(keyFile)
	if l := swap(); !strings.Contains(l, "configuration reloaded") {
		t.Fatalf("reload with the files fixed: %s", l)
	}
	if got := client(); got != "gateway-1" {
		t.Errorf("after the files were fixed: got client certificate %q, want gateway-1", got)
	}
}
