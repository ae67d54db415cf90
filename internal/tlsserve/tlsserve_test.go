package tlsserve

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/tlstest"
)

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pair copies c's files to cert.pem and key.pem in a new directory: the
// files a configuration names, which a test then replaces.
func pair(t *testing.T, c *tlstest.Cert) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	install(t, c, certFile, keyFile)
	return certFile, keyFile
}

// install writes c's certificate and key over certFile and keyFile, each
// renamed into place as a tool that replaces certificates would.
func install(t *testing.T, c *tlstest.Cert, certFile, keyFile string) {
	t.Helper()
	for src, dst := range map[string]string{c.CertFile: certFile, c.KeyFile: keyFile} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dst, data)
	}
}

func writeFile(t *testing.T, dst string, data []byte) {
	t.Helper()
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// serve starts an HTTPS server on loopback answering "ok" through s, and
// returns its address.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.Proto)
	})}
	go srv.Serve(s.NewListener(ln))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func newServer(t *testing.T, certFile, keyFile string, log *slog.Logger) *Server {
	t.Helper()
	s, err := New(t.Context(), Options{CertFile: certFile, KeyFile: keyFile, Origins: []string{"https://app.example.com"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func client(ca *tlstest.CA) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool, ServerName: "app.example.com"},
		ForceAttemptHTTP2: true,
	}}
}

// served is the leaf certificate a new connection to addr is given.
func served(t *testing.T, ca *tlstest.CA, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "app.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// eventually waits, for at most 10 s, until served gives want.
func eventually(t *testing.T, ca *tlstest.CA, addr string, want *tlstest.Cert) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := served(t, ca, addr)
		if got.Equal(want.Cert) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("got certificate %v, want %v", got.SerialNumber, want.Cert.SerialNumber)
		}
	}
}

func slowPoll(t *testing.T, d time.Duration) {
	old := pollInterval
	pollInterval = d
	t.Cleanup(func() { pollInterval = old })
}

func TestHTTP2(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	certFile, keyFile := pair(t, ca.Server(t, "app.example.com"))
	addr := serve(t, newServer(t, certFile, keyFile, nil))

	resp, err := client(ca).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "ok HTTP/2.0" {
		t.Errorf("got %s %q, want HTTP/2.0 %q", resp.Proto, body, "ok HTTP/2.0")
	}
	// Go's defaults: TLS 1.3 with the post-quantum hybrid key exchange.
	if v, c := resp.TLS.Version, resp.TLS.CurveID; v != tls.VersionTLS13 || c != tls.X25519MLKEM768 {
		t.Errorf("got %s with %v, want TLS 1.3 with X25519MLKEM768", tls.VersionName(v), c)
	}

	// HTTP/1.1 for a client that offers only it.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "app.example.com"}}}
	resp, err = c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Errorf("got %s, want HTTP/1.1", resp.Proto)
	}
}

func TestOldTLSRefused(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	certFile, keyFile := pair(t, ca.Server(t, "app.example.com"))
	addr := serve(t, newServer(t, certFile, keyFile, nil))
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "app.example.com", MinVersion: v, MaxVersion: v})
		if err == nil {
			conn.Close()
			t.Errorf("%s: handshake succeeded, want it refused", tls.VersionName(v))
		}
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "app.example.com", MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	conn.Close()
}

func TestNewRefusesBadPair(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	a, b := ca.Server(t, "app.example.com"), ca.Server(t, "app.example.com")
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"mismatched key", a.CertFile, b.KeyFile, "private key does not match public key"},
		{"missing cert", filepath.Join(t.TempDir(), "none.pem"), a.KeyFile, "no such file"},
		{"key as cert", a.KeyFile, a.KeyFile, "failed to find certificate PEM data"},
		{"no files", "", "", "no certificate source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(t.Context(), Options{CertFile: tc.cert, KeyFile: tc.key})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error %q shows the key", err)
			}
		})
	}
}

// TestWatchFiles replaces the files without telling: new connections get
// the new certificate, whether the files are renamed over or swapped as a
// Kubernetes Secret volume does (symlinks through ..data).
func TestWatchFiles(t *testing.T) {
	slowPoll(t, 20*time.Millisecond)
	ca := tlstest.NewCA(t, "test CA")
	first, second, third := ca.Server(t, "app.example.com"), ca.Server(t, "app.example.com"), ca.Server(t, "app.example.com")

	// A Secret volume: cert.pem -> ..data/cert.pem, ..data -> ..v1.
	dir := t.TempDir()
	for v, c := range map[string]*tlstest.Cert{"..v1": first, "..v2": second} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
			t.Fatal(err)
		}
		install(t, c, filepath.Join(dir, v, "cert.pem"), filepath.Join(dir, v, "key.pem"))
	}
	mustSymlink(t, "..v1", filepath.Join(dir, "..data"))
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	mustSymlink(t, filepath.Join("..data", "cert.pem"), certFile)
	mustSymlink(t, filepath.Join("..data", "key.pem"), keyFile)

	addr := serve(t, newServer(t, certFile, keyFile, nil))
	if got := served(t, ca, addr); !got.Equal(first.Cert) {
		t.Fatalf("got certificate %v, want the first", got.SerialNumber)
	}
	mustSymlink(t, "..v2", filepath.Join(dir, "..data.tmp"))
	if err := os.Rename(filepath.Join(dir, "..data.tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	eventually(t, ca, addr, second)

	// Files renamed over the ones named, behind the symlinks.
	install(t, third, filepath.Join(dir, "..v2", "cert.pem"), filepath.Join(dir, "..v2", "key.pem"))
	eventually(t, ca, addr, third)
}

func mustSymlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// TestReloadKeepsConnections replaces the files and reloads (SIGHUP): a
// client on a keep-alive connection goes on using it, and new connections
// get the new certificate.
func TestReloadKeepsConnections(t *testing.T) {
	slowPoll(t, time.Hour) // only Reload looks at the files
	ca := tlstest.NewCA(t, "test CA")
	first, second := ca.Server(t, "app.example.com"), ca.Server(t, "app.example.com")
	certFile, keyFile := pair(t, first)
	s := newServer(t, certFile, keyFile, nil)
	addr := serve(t, s)

	for _, proto := range []string{"h2", "http/1.1"} {
		t.Run(proto, func(t *testing.T) {
			install(t, first, certFile, keyFile)
			if err := s.Reload(); err != nil {
				t.Fatal(err)
			}
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "app.example.com", NextProtos: []string{proto}}, ForceAttemptHTTP2: proto == "h2"}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			get := func() (reused bool, leaf *x509.Certificate) {
				t.Helper()
				ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }})
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/", nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if body, _ := io.ReadAll(resp.Body); !strings.HasPrefix(string(body), "ok") {
					t.Fatalf("got %q, want ok", body)
				}
				return reused, resp.TLS.PeerCertificates[0]
			}
			if _, leaf := get(); !leaf.Equal(first.Cert) {
				t.Fatal("the first request did not get the first certificate")
			}
			install(t, second, certFile, keyFile)
			if err := s.Reload(); err != nil {
				t.Fatal(err)
			}
			reused, leaf := get()
			if !reused || !leaf.Equal(first.Cert) {
				t.Errorf("after the reload: reused %v, first certificate %v; want the same connection", reused, leaf.Equal(first.Cert))
			}
			if got := served(t, ca, addr); !got.Equal(second.Cert) {
				t.Errorf("a new connection got certificate %v, want the second %v", got.SerialNumber, second.Cert.SerialNumber)
			}
		})
	}
}

// TestBadPairKeepsCertificate: a replacement that does not load leaves the
// served certificate, and Reload logs why, without the files' contents.
func TestBadPairKeepsCertificate(t *testing.T) {
	slowPoll(t, time.Hour) // only Reload looks at the files
	ca := tlstest.NewCA(t, "test CA")
	first, second := ca.Server(t, "app.example.com"), ca.Server(t, "app.example.com")
	certFile, keyFile := pair(t, first)
	var logs logBuffer
	s := newServer(t, certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	addr := serve(t, s)
	certPEM, keyPEM := mustRead(t, second.CertFile), mustRead(t, second.KeyFile)

	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"half-written", certPEM, keyPEM[:len(keyPEM)/2], "failed to find any PEM data in key input"},
		{"mismatched key", certPEM, mustRead(t, first.KeyFile), "private key does not match public key"},
		{"empty certificate", nil, keyPEM, "failed to find any PEM data in certificate input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, certFile, tc.cert)
			writeFile(t, keyFile, tc.key)
			err := s.Reload()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
			if got := served(t, ca, addr); !got.Equal(first.Cert) {
				t.Errorf("got certificate %v, want the first still", got.SerialNumber)
			}
			if n := strings.Count(logs.String(), tc.want); n != 1 {
				t.Errorf("logged %d times, want once:\n%s", n, logs.String())
			}
		})
	}
	if l := logs.String(); strings.Contains(l, "PRIVATE KEY") || strings.Contains(l, string(keyPEM[40:80])) {
		t.Errorf("the log shows the key:\n%s", l)
	}
	install(t, second, certFile, keyFile)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(t, ca, addr); !got.Equal(second.Cert) {
		t.Errorf("got certificate %v, want the second", got.SerialNumber)
	}
}

// TestWatchBadPair: the watcher keeps the served certificate when the
// files change into a pair that does not load, logs it once (not at
// every poll), and takes the pair once it is whole.
func TestWatchBadPair(t *testing.T) {
	slowPoll(t, 10*time.Millisecond)
	ca := tlstest.NewCA(t, "test CA")
	first, second := ca.Server(t, "app.example.com"), ca.Server(t, "app.example.com")
	certFile, keyFile := pair(t, first)
	var logs logBuffer
	s := newServer(t, certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	addr := serve(t, s)

	writeFile(t, keyFile, mustRead(t, second.KeyFile)) // the new key, the old certificate
	const want = "private key does not match public key"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged:\n%s", logs.String())
		}
	}
	time.Sleep(100 * time.Millisecond) // ten more polls
	if n := strings.Count(logs.String(), want); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
	if got := served(t, ca, addr); !got.Equal(first.Cert) {
		t.Errorf("got certificate %v, want the first still", got.SerialNumber)
	}
	writeFile(t, certFile, mustRead(t, second.CertFile))
	eventually(t, ca, addr, second)
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCloseStopsWatching(t *testing.T) {
	slowPoll(t, 10*time.Millisecond)
	ca := tlstest.NewCA(t, "test CA")
	certFile, keyFile := pair(t, ca.Server(t, "app.example.com"))
	ctx, cancel := context.WithCancel(t.Context())
	s, err := New(ctx, Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan error)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(errors.New("Close did not return"))
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
