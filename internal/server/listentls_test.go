package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/server"
	"github.com/cloakroom/cloakroom/internal/tlstest"
)

// tlsGateway is a gateway serving https on localhost with a certificate
// of ca, whose files the test may replace, and tls.redirect_http.
type tlsGateway struct {
	*gateway
	ca                *tlstest.CA
	certFile, keyFile string
	redirect          string // the redirect listener's host:port
	reload            chan struct{}
	load              chan func() (*config.Config, error)
}

func startTLSGateway(t *testing.T) *tlsGateway {
	t.Helper()
	ca := tlstest.NewCA(t, "gateway CA")
	dir := t.TempDir()
	tg := &tlsGateway{ca: ca, certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"), reload: make(chan struct{}), load: make(chan func() (*config.Config, error), 1)}
	tg.install(t, ca.Server(t, "localhost"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg.redirect = rln.Addr().String()
	public := "https://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	_, idpSrv := demoProvider(t, public, nil)
	cfg := baseConfig(public, idpSrv.URL, "web", "web-secret")
	cfg.TLS = &config.TLS{CertFile: tg.certFile, KeyFile: tg.keyFile, RedirectHTTP: "127.0.0.1:0"}
	if problems := cfg.Validate(); len(problems) > 0 {
		t.Fatalf("config: %v", problems)
	}
	opts := server.Options{RedirectListener: rln, Reload: tg.reload, LoadConfig: func() (*config.Config, error) {
		select {
		case f := <-tg.load:
			return f()
		default:
			c := *cfg
			return &c, nil
		}
	}}
	tg.gateway = runGateway(t, ln, cfg, opts)
	c := tg.client(nil)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := c.Get(public + "/bff/login")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never became ready: %v; logs:\n%s", err, tg.Logs)
		}
	}
	return tg
}

// install writes c over the gateway's certificate files.
func (tg *tlsGateway) install(t *testing.T, c *tlstest.Cert) {
	t.Helper()
	for src, dst := range map[string]string{c.CertFile: tg.certFile, c.KeyFile: tg.keyFile} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+".tmp", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dst+".tmp", dst); err != nil {
			t.Fatal(err)
		}
	}
}

// client trusts the gateway's CA and speaks HTTP/2; it does not follow
// redirects.
func (tg *tlsGateway) client(jar *secureJar) *http.Client {
	c := noRedirect(nil)
	if jar != nil {
		c.Jar = jar
	}
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tg.ca.Pool}, ForceAttemptHTTP2: true}
	return c
}

// served is the certificate a new connection gets.
func (tg *tlsGateway) served(t *testing.T) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(tg.URL, "https://"), &tls.Config{RootCAs: tg.ca.Pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// waitServed waits until new connections get want.
func (tg *tlsGateway) waitServed(t *testing.T, want *tlstest.Cert) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !tg.served(t).Equal(want.Cert); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("new connections never got the new certificate; logs:\n%s", tg.Logs)
		}
	}
}

// TestTLSListener signs in over HTTPS with HTTP/2, through server.Run
// with tls.cert_file and key_file.
func TestTLSListener(t *testing.T) {
	tg := startTLSGateway(t)
	jar := newJar()
	b := &browser{t: t, jar: jar, c: tg.client(jar)}
	landing := signIn(t, tg.gateway, b, func(auth *url.URL) *url.URL { return demoLogin(t, b, auth, "alice", "alice") })
	if landing.ProtoMajor != 2 {
		t.Errorf("got %s, want HTTP/2", landing.Proto)
	}
	if got := landing.Header.Get("Strict-Transport-Security"); !strings.Contains(got, "max-age=") {
		t.Errorf("Strict-Transport-Security %q, want one", got)
	}
	if u := b.get(tg.URL+"/bff/user", "X-CSRF", "1"); u.StatusCode != http.StatusOK || !strings.Contains(u.Body, "alice-1") {
		t.Errorf("/bff/user: got %d %s, want alice", u.StatusCode, u.Body)
	}
	if logs := tg.Logs.String(); !strings.Contains(logs, `"msg":"cloakroom listening"`) || !strings.Contains(logs, `"scheme":"https"`) {
		t.Errorf("no https listening line:\n%s", logs)
	}
}

// TestTLSReload: the Reload signal reads the certificate files again,
// even when the configuration reload is refused; a connection kept alive
// across it goes on; a pair that does not load keeps the certificate; a
// changed tls section is refused.
func TestTLSReload(t *testing.T) {
	tg := startTLSGateway(t)
	c := tg.client(nil)
	get := func() (reused bool) {
		t.Helper()
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tg.URL+"/bff/login", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.ProtoMajor != 2 {
			t.Fatalf("got %d %s, want 302 over HTTP/2", resp.StatusCode, resp.Proto)
		}
		return reused
	}
	get()
	// reloadWith sends the Reload signal; load answers LoadConfig, which
	// Run calls after it read the certificate files again.
	reloadWith := func(load func() (*config.Config, error)) {
		t.Helper()
		called := make(chan struct{})
		tg.load <- func() (*config.Config, error) { close(called); return load() }
		tg.reload <- struct{}{}
		select {
		case <-called:
		case <-time.After(10 * time.Second):
			t.Fatal("LoadConfig not called")
		}
	}

	second := tg.ca.Server(t, "localhost")
	tg.install(t, second)
	reloadWith(func() (*config.Config, error) { return nil, errors.New("the file does not parse") })
	if got := tg.served(t); !got.Equal(second.Cert) {
		t.Errorf("after a refused reload: got certificate %v, want the new one %v", got.SerialNumber, second.Cert.SerialNumber)
	}
	if !get() {
		t.Error("the kept-alive connection was not reused after the reload")
	}

	// A mismatched pair keeps the certificate; the configuration reload
	// itself goes ahead.
	if err := os.WriteFile(tg.keyFile, mustReadFile(t, tg.ca.Server(t, "localhost").KeyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	reloadWith(func() (*config.Config, error) { c := *tg.cfg; return &c, nil })
	waitLog(t, tg.gateway, "configuration reloaded")
	if got := tg.served(t); !got.Equal(second.Cert) {
		t.Errorf("after a bad pair: got certificate %v, want the one served %v", got.SerialNumber, second.Cert.SerialNumber)
	}
	if logs := tg.Logs.String(); !strings.Contains(logs, "private key does not match public key") || strings.Contains(logs, "PRIVATE KEY") {
		t.Errorf("want the bad pair logged, without its key:\n%s", logs)
	}

	// The tls section cannot change live.
	reloadWith(func() (*config.Config, error) {
		c := *tg.cfg
		c.TLS = &config.TLS{CertFile: tg.certFile, KeyFile: tg.keyFile}
		return &c, nil
	})
	waitLog(t, tg.gateway, "tls changed: restart")
	if !get() {
		t.Error("the kept-alive connection was not reused")
	}
}

func waitLog(t *testing.T, g *gateway, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(g.Logs.String(), s); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never logged %q:\n%s", s, g.Logs)
		}
	}
}

func mustReadFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTLSRedirect: tls.redirect_http redirects to public_url's origin,
// path and query kept, whatever Host the request names, and closes with
// the gateway.
func TestTLSRedirect(t *testing.T) {
	tg := startTLSGateway(t)
	c := noRedirect(nil)
	for _, tc := range []struct {
		method, host string
		code         int
	}{
		{http.MethodGet, "localhost", http.StatusMovedPermanently},
		{http.MethodGet, strings.TrimPrefix(tg.URL, "https://"), http.StatusMovedPermanently},
		{http.MethodPost, "localhost", http.StatusPermanentRedirect},
		{http.MethodGet, "evil.example", http.StatusMovedPermanently},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+tg.redirect+"/app/x?y=1", nil)
		req.Host = tc.host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.Header.Get("Location"), tg.URL+"/app/x?y=1"; resp.StatusCode != tc.code || got != want {
			t.Errorf("%s Host %s: got %d %q, want %d %q", tc.method, tc.host, resp.StatusCode, got, tc.code, want)
		}
	}
	tg.Stop()
	if conn, err := net.Dial("tcp", tg.redirect); err == nil {
		conn.Close()
		t.Error("the redirect listener still accepts after shutdown")
	}
}
