package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/acmetest"
	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/server"
)

// TestTLSACME runs the gateway with tls.acme against Pebble: it obtains a
// certificate for public_url's host (HTTP-01 on redirect_http or
// TLS-ALPN-01 on listen, on the ports Pebble validates), and a browser
// that trusts Pebble's root signs in over HTTP/2.
func TestTLSACME(t *testing.T) {
	const host = "app.cloakroom.test" // Pebble's DNS answers 127.0.0.1
	ln, tlsPort := acmetest.Listen(t)
	rln, httpPort := acmetest.Listen(t)
	pebble := acmetest.Start(t, acmetest.Options{HTTPPort: httpPort, TLSPort: tlsPort})
	public := "https://" + net.JoinHostPort(host, strconv.Itoa(tlsPort))
	_, idpSrv := demoProvider(t, public, nil)
	cfg := baseConfig(public, idpSrv.URL, "web", "web-secret")
	cfg.TLS = &config.TLS{
		ACME: &config.ACME{
			Email: "ops@cloakroom.test", CA: pebble.Directory, CARoot: pebble.CAFile,
			Storage: t.TempDir(), AgreeTOS: true,
		},
		RedirectHTTP: "127.0.0.1:" + strconv.Itoa(httpPort),
	}
	if problems := cfg.Validate(); len(problems) > 0 {
		t.Fatalf("config: %v", problems)
	}
	g := runGateway(t, ln, cfg, server.Options{RedirectListener: rln})

	jar := newJar()
	c := noRedirect(jar)
	c.Transport = &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pebble.Roots()},
		ForceAttemptHTTP2: true,
		// The browser finds the gateway's host as Pebble's DNS does.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if h, port, _ := net.SplitHostPort(addr); h == host {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	var last error
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := c.Get(public + "/bff/login")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound {
				break
			}
			err = errors.New(resp.Status)
		}
		last = err
		if time.Now().After(deadline) {
			t.Fatalf("no certificate within 90s: %v; logs:\n%s", last, g.Logs)
		}
	}
	b := &browser{t: t, jar: jar, c: c}
	landing := signIn(t, g, b, func(auth *url.URL) *url.URL { return demoLogin(t, b, auth, "alice", "alice") })
	if landing.ProtoMajor != 2 {
		t.Errorf("got %s, want HTTP/2", landing.Proto)
	}
	if u := b.get(public+"/bff/user", "X-CSRF", "1"); u.StatusCode != http.StatusOK || !strings.Contains(u.Body, "alice-1") {
		t.Errorf("/bff/user: got %d %s, want alice", u.StatusCode, u.Body)
	}
	if got := pebble.Issued(); len(got) != 1 {
		t.Errorf("pebble issued %v, want one certificate", got)
	}
	if logs := g.Logs.String(); !strings.Contains(logs, "certificate obtained successfully") {
		t.Errorf("no certificate line in the logs:\n%s", logs)
	}
}
