// Package redistest runs real redis-server processes for tests: one per
// Start, on 127.0.0.1 and a free port, with persistence off and a temporary
// working directory, stopped when the test ends. It is test support: only
// _test.go files import it.
//
// When redis-server is not installed the test is skipped, or fails if the
// environment variable CI or CLOAKROOM_REQUIRE_INTEGRATION is set, so that
// CI never passes by skipping. `make deps` installs it.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 10 * time.Second

// Server is one redis-server process. Its methods are safe for concurrent
// use; Stop and Restart keep the address, so clients connected before an
// outage can reconnect to the same Addr.
type Server struct {
	// Addr is host:port, e.g. "127.0.0.1:40123".
	Addr string
	// URL is redis://Addr/0.
	URL string

	t    testing.TB
	bin  string
	args []string
	dir  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	clients []rueidis.Client
}

// Start starts a redis-server and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := lookup(t, "redis-server")
	dir := t.TempDir()
	var s *Server
	// The free port is only free until someone else takes it: try again on
	// a new one if the server cannot bind.
	var err error
	for range 5 {
		port := freePort(t)
		s = newServer(t, bin, dir, port)
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.cleanup)
	return s
}

func newServer(t testing.TB, bin, dir string, port int) *Server {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return &Server{
		Addr: addr,
		URL:  "redis://" + addr + "/0",
		t:    t,
		bin:  bin,
		dir:  dir,
		args: []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--protected-mode", "yes",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--logfile", filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log"),
			"--daemonize", "no",
		},
	}
}

// Client returns a plain client (no client-side caching) for inspecting or
// changing the server directly. It is closed when the test ends.
func (s *Server) Client() rueidis.Client {
	s.t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{s.Addr},
		DisableCache:      true,
		ForceSingleClient: true,
		Dialer:            net.Dialer{Timeout: 2 * time.Second},
		ConnWriteTimeout:  5 * time.Second,
	})
	if err != nil {
		s.t.Fatalf("redistest: admin client for %s: %v", s.Addr, err)
	}
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	return c
}

// Stop kills the server at once (SIGKILL), as an outage would, and waits
// for it to exit. Data is lost: persistence is off.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

// Restart starts the server again on the same port, empty, and waits until
// it answers PING. It stops the server first if it is running.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The kernel may hold the port briefly after the kill.
	deadline := time.Now().Add(startTimeout)
	for {
		if err = s.start(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Server) start() error {
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	if err := waitPing(s.Addr, exited, startTimeout); err != nil {
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("redis-server on %s: %w%s", s.Addr, err, s.logTail())
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

func (s *Server) killLocked() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd, s.exited = nil, nil
}

func (s *Server) cleanup() {
	s.mu.Lock()
	clients := s.clients
	s.clients = nil
	s.killLocked()
	s.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
}

// logTail returns the end of the server's log file, for failure messages.
func (s *Server) logTail() string {
	for i, a := range s.args {
		if a == "--logfile" && i+1 < len(s.args) {
			b, err := os.ReadFile(s.args[i+1])
			if err != nil || len(b) == 0 {
				return ""
			}
			if len(b) > 2000 {
				b = b[len(b)-2000:]
			}
			return "\nserver log:\n" + string(b)
		}
	}
	return ""
}

// Cluster is a Redis Cluster of masters only, each a Server.
type Cluster struct {
	// Nodes are the masters, in slot order.
	Nodes []*Server
	// URL names every node: redis://first?addr=second&addr=third...
	URL string
}

// StartCluster starts n (at least 3) cluster-enabled servers, joins them
// with redis-cli --cluster create, waits until every node reports
// cluster_state:ok, and stops them when t ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, not %d", n)
	}
	bin := lookup(t, "redis-server")
	cli := lookup(t, "redis-cli")
	c := &Cluster{}
	var addrs []string
	for range n {
		dir := t.TempDir()
		var s *Server
		var err error
		for range 5 {
			port := freePort(t)
			s = newServer(t, bin, dir, port)
			s.args = append(s.args,
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", "5000",
			)
			if err = s.start(); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("redistest: cluster node: %v", err)
		}
		t.Cleanup(s.cleanup)
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, s := range c.Nodes {
		if err := waitClusterOK(ctx, s.Addr); err != nil {
			t.Fatalf("redistest: cluster node %s: %v", s.Addr, err)
		}
	}
	c.URL = "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		if i == 0 {
			c.URL += "?"
		} else {
			c.URL += "&"
		}
		c.URL += "addr=" + a
	}
	return c
}

func lookup(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err == nil {
		return bin
	}
	msg := fmt.Sprintf("redistest: %s not found (run `make deps` to install redis-server)", name)
	if os.Getenv("CI") != "" || os.Getenv("CLOAKROOM_REQUIRE_INTEGRATION") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPing polls addr with a raw PING until it answers +PONG, the process
// exits, or timeout passes.
func waitPing(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited during start")
		default:
		}
		reply, err := command(addr, "PING")
		if err == nil && reply == "+PONG" {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("PING answered %q", reply)
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no PONG within %v: %v", timeout, last)
}

func waitClusterOK(ctx context.Context, addr string) error {
	for {
		reply, err := command(addr, "CLUSTER", "INFO")
		if err == nil && strings.Contains(reply, "cluster_state:ok") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster_state not ok: %v %q", err, reply)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// command sends one command in RESP2 on a fresh connection and returns the
// first reply line (or the bulk string for a bulk reply).
func command(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return line, nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return line, nil
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// StartSentinel starts a Sentinel on a free port that monitors master
// under name (quorum 1), waits until it reports the master, and stops it
// when t ends. Its URL is redis://Addr (a Sentinel has no databases).
func StartSentinel(t testing.TB, master *Server, name string) *Server {
	t.Helper()
	bin := lookup(t, "redis-server")
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(master.Addr)
	var s *Server
	var err error
	for range 5 {
		p := freePort(t)
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\nsentinel monitor %s %s %s 1\n",
			p, dir, filepath.Join(dir, "sentinel.log"), name, host, port)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		s = &Server{Addr: addr, URL: "redis://" + addr, t: t, bin: bin, dir: dir, args: []string{conf, "--sentinel"}}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: sentinel: %v", err)
	}
	t.Cleanup(s.cleanup)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		reply, err := command(s.Addr, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
		if err == nil && strings.HasPrefix(reply, "*2") {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redistest: sentinel %s does not know master %q: %v %q", s.Addr, name, err, reply)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StartReplica starts a redis-server replicating master, waits until the
// master reports it connected and in sync, and stops it when t ends.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	bin := lookup(t, "redis-server")
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(master.Addr)
	var s *Server
	var err error
	for range 5 {
		s = newServer(t, bin, dir, freePort(t))
		s.args = append(s.args, "--replicaof", host, port)
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: replica: %v", err)
	}
	t.Cleanup(s.cleanup)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		reply, err := command(s.Addr, "INFO", "replication")
		if err == nil && strings.Contains(reply, "master_link_status:up") {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redistest: replica %s not in sync with %s: %v %q", s.Addr, master.Addr, err, reply)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
