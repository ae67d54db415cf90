package tlsserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/acmetest"
	"github.com/cloakroom/cloakroom/internal/tlstest"
)

// acmeHost is the name the tests obtain certificates for: pebble resolves
// it, like every name, to 127.0.0.1 through its test DNS server.
const acmeHost = "app.cloakroom.test"

// issueBound bounds the wait for a certificate: an order takes a second
// or two with Pebble, more on a loaded machine.
const issueBound = 90 * time.Second

// acmeInstance is one gateway's HTTPS side on the ports pebble validates.
type acmeInstance struct {
	srv  *Server
	addr string // the TLS listener, 127.0.0.1:port
	// redirect is the redirect listener's address, when HTTP-01 is on.
	redirect string
}

// startACME starts an ACME-managed Server whose TLS listener is on
// tlsPort and, when a.HTTP01, whose redirect listener is on httpPort, both
// on 127.0.0.1, each answering "ok" or redirecting; all stopped when the
// test ends.
// tlsLn is the TLS listener's, httpLn the redirect listener's (used when
// a.HTTP01).
func startACME(t *testing.T, a ACME, tlsLn, httpLn net.Listener, log *slog.Logger) *acmeInstance {
	t.Helper()
	origin := "https://" + net.JoinHostPort(acmeHost, strconv.Itoa(tlsLn.Addr().(*net.TCPAddr).Port))
	s, err := New(t.Context(), Options{ACME: &a, Origins: []string{origin}, Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	in := &acmeInstance{srv: s, addr: serveOn(tlsLn, func(ln net.Listener) error {
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
		t.Cleanup(func() { hs.Close() })
		return hs.Serve(s.NewListener(ln))
	})}
	if a.HTTP01 {
		in.redirect = serveOn(httpLn, func(ln net.Listener) error {
			hs := s.RedirectServer()
			t.Cleanup(func() { hs.Close() })
			return hs.Serve(ln)
		})
	}
	return in
}

// serveOn serves on ln in the background and returns its address.
func serveOn(ln net.Listener, serve func(net.Listener) error) string {
	go serve(ln)
	return ln.Addr().String()
}

// servedLeaf handshakes with addr for acmeHost, verifying against roots,
// and returns the certificate served.
func servedLeaf(addr string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 5 * time.Second},
		Config:    &tls.Config{ServerName: acmeHost, RootCAs: roots},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// waitLeaf polls addr until it serves a certificate for acmeHost that
// chains to roots and that accept takes.
func waitLeaf(t *testing.T, addr string, roots *x509.CertPool, accept func(*x509.Certificate) bool) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(issueBound)
	var last error
	for time.Now().Before(deadline) {
		leaf, err := servedLeaf(addr, roots)
		if err == nil && accept(leaf) {
			return leaf
		}
		if err == nil {
			err = errors.New("serial " + serial(leaf) + " not accepted")
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s served no certificate for %s within %v: %v", addr, acmeHost, issueBound, last)
	return nil
}

func anyLeaf(*x509.Certificate) bool { return true }

// serial is the certificate's serial as pebble logs it.
func serial(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// get requests / over HTTPS from addr for acmeHost.
func get(t *testing.T, addr string, roots *x509.CertPool) (string, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	_, port, _ := net.SplitHostPort(addr)
	resp, err := c.Get("https://" + net.JoinHostPort(acmeHost, port) + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Proto, string(b)
}

// TestACMEIssueAndShare obtains a certificate from Pebble through
// TLS-ALPN-01 on the TLS listener, serves HTTPS (HTTP/2) with it, and
// starts a second instance on the same storage, which serves the stored
// certificate without a second order.
func TestACMEIssueAndShare(t *testing.T) {
	tlsLn, tlsPort := acmetest.Listen(t)
	httpLn, httpPort := acmetest.Listen(t)
	pebble := acmetest.Start(t, acmetest.Options{HTTPPort: httpPort, TLSPort: tlsPort})
	roots := pebble.Roots()
	storage := t.TempDir()
	var logs logBuffer
	a := ACME{
		Email: "ops@cloakroom.test", CA: pebble.Directory, CARoot: pebble.CAFile,
		Storage: storage, AgreeTOS: true,
	}
	// At debug level, the most certmagic and its ACME client say.
	first := startACME(t, a, tlsLn, httpLn, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	leaf := waitLeaf(t, first.addr, roots, anyLeaf)
	if !slices.Contains(leaf.DNSNames, acmeHost) {
		t.Errorf("got names %v, want %s", leaf.DNSNames, acmeHost)
	}
	if got, want := pebble.Issued(), []string{serial(leaf)}; !slices.Equal(got, want) {
		t.Errorf("pebble issued %v, want %v", got, want)
	}
	if proto, body := get(t, first.addr, roots); proto != "HTTP/2.0" || body != "ok" {
		t.Errorf("got %s %q, want HTTP/2.0 \"ok\"", proto, body)
	}
	if !strings.Contains(logs.String(), "certificate obtained successfully") {
		t.Errorf("certmagic's log did not reach slog; got:\n%s", logs.String())
	}
	// No private key, the account's or the certificate's, reaches the log.
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Error("a PEM private key reached the log")
	}
	var keys int
	err := filepath.WalkDir(storage, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".key") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		keys++
		// The first line of the key's base64 body.
		if lines := strings.Split(string(b), "\n"); len(lines) > 1 && strings.Contains(logs.String(), lines[1]) {
			t.Errorf("the key in %s reached the log", path)
		}
		return nil
	})
	if err != nil || keys < 2 {
		t.Errorf("storage: %d private keys (want the account's and the certificate's), %v", keys, err)
	}
	if _, err := os.Stat(filepath.Join(storage, "certificates")); err != nil {
		t.Errorf("storage: %v", err)
	}

	// A second instance on the same storage, on other ports while the
	// first keeps serving: it loads the stored certificate.
	otherLn, _ := acmetest.Listen(t)
	second := startACME(t, a, otherLn, nil, slog.New(slog.DiscardHandler))
	got := waitLeaf(t, second.addr, roots, anyLeaf)
	if serial(got) != serial(leaf) {
		t.Errorf("second instance serves serial %s, want the stored %s", serial(got), serial(leaf))
	}
	if got, want := pebble.Issued(), []string{serial(leaf)}; !slices.Equal(got, want) {
		t.Errorf("pebble issued %v, want only %v", got, want)
	}
}

// TestACMEFleetStart starts two instances on one storage at the same time,
// as a fleet's first deploy does: they take the storage's lock in turn,
// one order is placed (whichever instance places it, pebble validates on
// the first one's port, which answers from the shared challenge state),
// and both serve the one certificate.
func TestACMEFleetStart(t *testing.T) {
	tlsLn, tlsPort := acmetest.Listen(t)
	pebble := acmetest.Start(t, acmetest.Options{HTTPPort: acmetest.FreePort(t), TLSPort: tlsPort})
	roots := pebble.Roots()
	a := ACME{CA: pebble.Directory, CARoot: pebble.CAFile, Storage: t.TempDir(), AgreeTOS: true}
	otherLn, _ := acmetest.Listen(t)
	first := startACME(t, a, tlsLn, nil, slog.New(slog.DiscardHandler))
	second := startACME(t, a, otherLn, nil, slog.New(slog.DiscardHandler))
	one, two := waitLeaf(t, first.addr, roots, anyLeaf), waitLeaf(t, second.addr, roots, anyLeaf)
	if serial(one) != serial(two) {
		t.Errorf("instances serve serials %s and %s, want one certificate", serial(one), serial(two))
	}
	if got, want := pebble.Issued(), []string{serial(one)}; !slices.Equal(got, want) {
		t.Errorf("pebble issued %v, want only %v", got, want)
	}
}

// TestACMEHTTP01AndRenew obtains a certificate through HTTP-01 on the
// redirect listener (TLS-ALPN-01 left out), which also redirects other
// requests to https, and renews it ahead of expiry: Pebble issues
// certificates valid for 30 seconds, and a new serial is served before
// the first expires.
func TestACMEHTTP01AndRenew(t *testing.T) {
	tlsLn, tlsPort := acmetest.Listen(t)
	httpLn, httpPort := acmetest.Listen(t)
	pebble := acmetest.Start(t, acmetest.Options{HTTPPort: httpPort, TLSPort: tlsPort, Validity: 30 * time.Second})
	roots := pebble.Roots()
	a := ACME{
		CA: pebble.Directory, CARoot: pebble.CAFile, Storage: t.TempDir(), AgreeTOS: true, HTTP01: true,
		renewCheckInterval: time.Second, noTLSALPN: true,
	}
	in := startACME(t, a, tlsLn, httpLn, slog.New(slog.DiscardHandler))
	first := waitLeaf(t, in.addr, roots, anyLeaf)
	if !strings.Contains(pebble.Log(), "validate w/ HTTP:") {
		t.Errorf("pebble validated no http-01 challenge; its log:\n%s", pebble.Log())
	}

	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
		Get("http://" + in.redirect + "/x?y=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://" + net.JoinHostPort(acmeHost, strconv.Itoa(tlsPort)) + "/x?y=1"; resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Errorf("redirect: got %d %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	renewed := waitLeaf(t, in.addr, roots, func(c *x509.Certificate) bool { return serial(c) != serial(first) })
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %v, not after the first's %v", renewed.NotAfter, first.NotAfter)
	}
	if issued := pebble.Issued(); !slices.Contains(issued, serial(renewed)) || len(issued) < 2 {
		t.Errorf("pebble issued %v, want %s and %s among them", issued, serial(first), serial(renewed))
	}
}

// TestACMEOptionsRefused checks what New refuses before any ACME request.
func TestACMEOptionsRefused(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := ACME{Storage: t.TempDir(), AgreeTOS: true, CA: "https://127.0.0.1:1/dir"}
	tests := []struct {
		name    string
		edit    func(*ACME)
		origins []string
		want    string
	}{
		{"agree_tos false", func(a *ACME) { a.AgreeTOS = false }, nil, "agree_tos must be true"},
		{"no storage", func(a *ACME) { a.Storage = "" }, nil, "storage is required"},
		{"no host", func(*ACME) {}, []string{}, "no host"},
		{"ca_root missing", func(a *ACME) { a.CARoot = filepath.Join(t.TempDir(), "none.pem") }, nil, "ca_root"},
		{"ca_root not PEM", func(a *ACME) { a.CARoot = notPEM }, nil, "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ok
			tt.edit(&a)
			origins := tt.origins
			if origins == nil {
				origins = []string{"https://" + acmeHost}
			}
			s, err := New(t.Context(), Options{ACME: &a, Origins: origins})
			if err == nil {
				s.Close()
				t.Fatalf("got no error, want one with %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q in it", err, tt.want)
			}
		})
	}
}

// TestACMECAUnreachable starts with a CA that does not answer: New
// succeeds (the gateway starts), handshakes fail until a certificate
// exists, and Close ends the retries.
func TestACMECAUnreachable(t *testing.T) {
	ca := tlstest.NewCA(t, "unused")
	a := ACME{CA: "https://127.0.0.1:" + strconv.Itoa(acmetest.FreePort(t)) + "/dir", CARoot: ca.File, Storage: t.TempDir(), AgreeTOS: true}
	ln, _ := acmetest.Listen(t)
	in := startACME(t, a, ln, nil, slog.New(slog.DiscardHandler))
	if _, err := servedLeaf(in.addr, ca.Pool); err == nil {
		t.Fatal("handshake succeeded without a certificate")
	}
	if err := in.srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
