// Package acmetest runs Pebble, Let's Encrypt's ACME test server, for tests
// that obtain certificates automatically: one pebble process and one
// pebble-challtestsrv process (the DNS server pebble resolves names with,
// answering 127.0.0.1 for every name) per Start, on loopback and free ports,
// killed when the test ends. It is test support: only _test.go files import
// it.
//
// Both programs are built from tools/pebble by internal/oidctest/gotool; a
// build that fails fails the test, so CI never passes by skipping.
//
// Pebble's validator connects, for every name, to 127.0.0.1 on the ports
// Options name: HTTPPort for HTTP-01 (the gateway's redirect_http listener)
// and TLSPort for TLS-ALPN-01 (the gateway's TLS listener). Its ACME and
// management listeners serve HTTPS with a certificate from a throwaway CA
// (internal/tlstest) whose PEM file is CAFile, what the ACME client must
// trust; the certificates pebble issues chain to Roots, a different CA that
// pebble makes when it starts.
package acmetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidctest/gotool"
	"github.com/cloakroom/cloakroom/internal/tlstest"
)

// errGaveUp is what a probe returns when waiting longer cannot help.
var errGaveUp = errors.New("gave up")

// startTimeout bounds how long each process may take to answer.
const startTimeout = 30 * time.Second

// Options configure a Pebble.
type Options struct {
	// HTTPPort and TLSPort are the ports on 127.0.0.1 that pebble's
	// validator connects to for HTTP-01 and TLS-ALPN-01 challenges.
	HTTPPort, TLSPort int
	// Validity is how long issued certificates are valid; pebble's default
	// (90 days) when zero. Whole seconds.
	Validity time.Duration
}

// Server is one pebble with its DNS server.
type Server struct {
	// Directory is the ACME directory URL (https://127.0.0.1:<port>/dir).
	Directory string
	// CAFile is the PEM file of the CA that signed the certificate pebble's
	// listeners serve (what an ACME client's trusted roots must hold).
	CAFile string
	// DNS is the address (host:port, UDP) of the DNS server pebble uses.
	DNS string

	t          testing.TB
	client     *http.Client
	management string

	mu  sync.Mutex
	log bytes.Buffer
}

// Start starts pebble-challtestsrv and pebble and stops both when t ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	pebble := gotool.Build(t, "pebble")
	challsrv := gotool.Build(t, "pebble-challtestsrv")
	ca := tlstest.NewCA(t, "Cloakroom Test Pebble CA")
	cert := ca.Server(t, "127.0.0.1", "localhost")
	s := &Server{
		CAFile: ca.File,
		t:      t,
		client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}},
		},
	}
	// A free port is only free until someone else takes it: start again on
	// new ports if a process cannot bind.
	var err error
	for range 3 {
		if err = s.startDNS(challsrv); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("acmetest: pebble-challtestsrv: %v", err)
	}
	for range 3 {
		if err = s.startPebble(pebble, cert, opts); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("acmetest: pebble: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("acmetest: pebble's log:\n%s", s.Log())
		}
	})
	return s
}

// startDNS runs pebble-challtestsrv with its DNS server on a port free
// for both UDP and TCP (pebble's validator asks over TCP) answering 127.0.0.1 for every A query and nothing for AAAA (pebble dials
// the first address it resolves, and the gateway listens on IPv4), its
// challenge servers off and its management interface on a free port.
func (s *Server) startDNS(bin string) error {
	dns := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeDNSPort(s.t)))
	cmd := exec.Command(bin,
		"-dnsserver", dns,
		"-defaultIPv4", "127.0.0.1",
		"-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
		"-management", net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(s.t))),
	)
	logged := len(s.Log())
	exited, err := s.run(cmd, "challtestsrv")
	if err != nil {
		return err
	}
	// Over TCP, as pebble asks: a server that could bind only UDP (another
	// process took the TCP port) must not pass.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", dns)
	}}
	err = poll(exited, func(ctx context.Context) error {
		// It logs a failed bind and runs on without that server.
		if strings.Contains(s.Log()[logged:], "address already in use") {
			cmd.Process.Kill()
			return fmt.Errorf("%w: a port of %s was taken", errGaveUp, dns)
		}
		addrs, err := r.LookupHost(ctx, "probe.cloakroom.test")
		if err == nil && (len(addrs) != 1 || addrs[0] != "127.0.0.1") {
			return fmt.Errorf("probe.cloakroom.test resolves to %v, want [127.0.0.1]", addrs)
		}
		return err
	})
	if err != nil {
		return err
	}
	s.DNS = dns
	return nil
}

// startPebble writes pebble's configuration and runs it with the DNS
// server, waiting for its directory to answer.
func (s *Server) startPebble(bin string, cert *tlstest.Cert, opts Options) error {
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(s.t)))
	management := net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(s.t)))
	profile := map[string]any{"description": "Cloakroom tests"}
	if opts.Validity > 0 {
		profile["validityPeriod"] = int64(opts.Validity / time.Second)
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": management,
		"certificate":             cert.CertFile,
		"privateKey":              cert.KeyFile,
		"httpPort":                opts.HTTPPort,
		"tlsPort":                 opts.TLSPort,
		"keyAlgorithm":            "ecdsa",
		"profiles":                map[string]any{"default": profile},
	}}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	file := filepath.Join(s.t.TempDir(), "pebble.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-config", file, "-dnsserver", s.DNS)
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once
		"PEBBLE_WFE_NONCEREJECT=0", // reject no good nonce
		"PEBBLE_AUTHZREUSE=0",      // every order is validated anew
	)
	exited, err := s.run(cmd, "pebble")
	if err != nil {
		return err
	}
	dir := "https://" + listen + "/dir"
	err = poll(exited, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, dir, nil)
		if err != nil {
			return err
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", dir, resp.Status)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.Directory = dir
	s.management = "https://" + management
	return nil
}

// run starts cmd with its output in s's log, killing it when the test
// ends; the channel it returns closes when the process exits.
func (s *Server) run(cmd *exec.Cmd, name string) (<-chan struct{}, error) {
	w := &logWriter{s: s, prefix: name + ": "}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return exited, nil
}

// Roots returns the pool of pebble's issuing root, which the certificates
// it issues chain to.
func (s *Server) Roots() *x509.CertPool {
	s.t.Helper()
	resp, err := s.client.Get(s.management + "/roots/0")
	if err != nil {
		s.t.Fatalf("acmetest: pebble's root: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("acmetest: pebble's root: %s, %v", resp.Status, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		s.t.Fatalf("acmetest: pebble's root is not PEM: %q", b)
	}
	return pool
}

// issuedRE matches pebble's log line for each certificate it issues.
var issuedRE = regexp.MustCompile(`Issued certificate serial ([0-9a-f]+) for order`)

// Issued returns the serial numbers (hexadecimal, as pebble logs them) of
// the certificates pebble has issued so far, oldest first.
func (s *Server) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var serials []string
	for _, m := range issuedRE.FindAllSubmatch(s.log.Bytes(), -1) {
		serials = append(serials, string(m[1]))
	}
	return serials
}

// Log returns what pebble and pebble-challtestsrv have printed so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// logWriter appends a process's output to its Server's log.
type logWriter struct {
	s      *Server
	prefix string
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	for line := range bytes.Lines(p) {
		w.s.log.WriteString(w.prefix)
		w.s.log.Write(line)
	}
	return len(p), nil
}

// poll calls probe until it succeeds, the process exits, or startTimeout
// passes, and returns the last error.
func poll(exited <-chan struct{}, probe func(context.Context) error) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited before it answered")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		last = probe(ctx)
		cancel()
		if last == nil || errors.Is(last, errGaveUp) {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer within %v: %w", startTimeout, last)
}

// Listen returns a TCP listener on a free port of 127.0.0.1, closed at
// the end of the test. Bind the ports pebble validates on (Options.HTTPPort,
// TLSPort) this way before Start, and serve on these listeners: a port
// found free and bound later can be taken by another process meanwhile.
func Listen(t testing.TB) (net.Listener, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("acmetest: listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, l.Addr().(*net.TCPAddr).Port
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("acmetest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freeDNSPort returns a port on 127.0.0.1 that was free a moment ago for
// both UDP and TCP.
func freeDNSPort(t testing.TB) int {
	t.Helper()
	for range 20 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("acmetest: find a free UDP port: %v", err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		c.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("acmetest: no port free for both UDP and TCP in 20 tries")
	return 0
}
