package proxy

import (
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/tlstest"
)

func TestLoadTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "Load CA")
	client := ca.Client(t, "gateway")
	other := ca.Client(t, "other")
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyPEM, err := os.ReadFile(client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	garbage := write("garbage.pem", "not PEM at all")
	keyAsCA := write("key-as-ca.pem", string(keyPEM))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name    string
		files   TLSFiles
		wantErr string // "" for success
	}{
		{"nothing", TLSFiles{}, ""},
		{"ca only", TLSFiles{CAFile: ca.File}, ""},
		{"everything", TLSFiles{CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile, ServerName: "orders.internal"}, ""},
		{"ca missing", TLSFiles{CAFile: missing}, "ca_file: open"},
		{"ca not PEM", TLSFiles{CAFile: garbage}, "ca_file: holds no PEM certificate"},
		{"ca holds a key", TLSFiles{CAFile: keyAsCA}, `ca_file: block 1 is "PRIVATE KEY", not a CERTIFICATE`},
		{"cert without key", TLSFiles{CertFile: client.CertFile}, "set both or neither"},
		{"key without cert", TLSFiles{KeyFile: client.KeyFile}, "set both or neither"},
		{"key missing", TLSFiles{CertFile: client.CertFile, KeyFile: missing}, "cert_file and key_file: open"},
		{"key not PEM", TLSFiles{CertFile: client.CertFile, KeyFile: garbage}, "cert_file and key_file: tls: failed to find any PEM data in key input"},
		{"pair mismatched", TLSFiles{CertFile: client.CertFile, KeyFile: other.KeyFile}, "private key does not match public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadTLS(tt.files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "BEGIN") || strings.Contains(err.Error(), string(keyPEM[40:80])) {
					t.Errorf("error shows file contents: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.MinVersion != tls.VersionTLS12 {
				t.Errorf("got MinVersion %x, want TLS 1.2", c.MinVersion)
			}
			if c.ServerName != tt.files.ServerName {
				t.Errorf("got ServerName %q, want %q", c.ServerName, tt.files.ServerName)
			}
			if got, want := c.RootCAs != nil, tt.files.CAFile != ""; got != want {
				t.Errorf("got RootCAs set %v, want %v", got, want)
			}
			if c.RootCAs != nil && !c.RootCAs.Equal(ca.Pool) {
				t.Errorf("RootCAs is not the CA file's pool")
			}
			if got, want := c.GetClientCertificate != nil, tt.files.CertFile != ""; got != want {
				t.Fatalf("got a client certificate %v, want %v", got, want)
			}
			if c.GetClientCertificate != nil {
				// Presented even when the server names no acceptable CA.
				cert, err := c.GetClientCertificate(&tls.CertificateRequestInfo{})
				if err != nil {
					t.Fatal(err)
				}
				if got := cert.Leaf.Subject.CommonName; got != "gateway" {
					t.Errorf("got client certificate %q, want gateway", got)
				}
			}
		})
	}
}

// mtlsUpstream is an https server that requires a client certificate
// issued by ca and answers with its common name. It counts connections
// closed.
type mtlsUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	closed int
}

func newMTLSUpstream(t *testing.T, ca *tlstest.CA) *mtlsUpstream {
	t.Helper()
	u := &mtlsUpstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	u.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool,
	}
	u.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes fail on purpose
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

func TestRouteTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "Upstream CA")
	up := newMTLSUpstream(t, ca)
	client := ca.Client(t, "gateway")
	load := func(f TLSFiles) *tls.Config {
		c, err := LoadTLS(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name string
		tls  *tls.Config
		code int
		body string
	}{
		{"ca and client certificate", load(TLSFiles{CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile}), http.StatusOK, "gateway"},
		{"no tls settings", nil, http.StatusBadGateway, ""},
		{"ca without client certificate", load(TLSFiles{CAFile: ca.File}), http.StatusBadGateway, ""},
		{"another CA", load(TLSFiles{CAFile: tlstest.NewCA(t, "Other CA").File, CertFile: client.CertFile, KeyFile: client.KeyFile}), http.StatusBadGateway, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(Route{Prefix: "/api/", Upstream: mustParse(t, up.URL+"/"), Bearer: noToken{}, TLS: tt.tls}, Options{
				PublicURL: mustParse(t, "https://app.example.com"), CSRFHeader: "X-CSRF", SessionCookie: "s",
				Logger: slog.New(slog.DiscardHandler),
			})
			t.Cleanup(h.(interface{ CloseIdleConnections() }).CloseIdleConnections)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/x", nil))
			if w.Code != tt.code {
				t.Fatalf("got status %d, want %d; body %s", w.Code, tt.code, w.Body)
			}
			if tt.code == http.StatusOK && w.Body.String() != tt.body {
				t.Errorf("got body %q, want %q", w.Body, tt.body)
			}
			if tt.code != http.StatusOK {
				if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("got Content-Type %q, want application/problem+json", ct)
				}
				for _, leak := range []string{"x509", "tls", "certificate", "127.0.0.1"} {
					if strings.Contains(w.Body.String(), leak) {
						t.Errorf("the answer tells %q: %s", leak, w.Body)
					}
				}
			}
		})
	}
}

// TestRouteCloseIdle: closing a route's idle connections closes the one
// its call left open for reuse.
func TestRouteCloseIdle(t *testing.T) {
	ca := tlstest.NewCA(t, "Idle CA")
	up := newMTLSUpstream(t, ca)
	client := ca.Client(t, "gateway")
	c, err := LoadTLS(TLSFiles{CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Route{Prefix: "/api/", Upstream: mustParse(t, up.URL+"/"), Bearer: noToken{}, TLS: c}, Options{
		PublicURL: mustParse(t, "https://app.example.com"), CSRFHeader: "X-CSRF", SessionCookie: "s",
		Logger: slog.New(slog.DiscardHandler),
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/x", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200", w.Code)
	}
	if n := up.closedConns(); n != 0 {
		t.Fatalf("got %d connections closed before CloseIdleConnections, want 0", n)
	}
	h.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for up.closedConns() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was never closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
