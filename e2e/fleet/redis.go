package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// masterSet is the name the Sentinels monitor the primary under.
const masterSet = "fleet"

// Sentinel timings: a primary that does not answer for downAfter is
// down; failoverTimeout also spaces two failovers of one primary.
const (
	downAfter       = 1000 * time.Millisecond
	failoverTimeout = 3000 * time.Millisecond
)

// redisNode is one redis-server, data node or Sentinel.
type redisNode struct {
	name string
	addr string
	p    *proc
}

// redisFleet is a primary, its replicas and the Sentinels that watch them.
type redisFleet struct {
	nodes     []*redisNode // data nodes; nodes[0] starts as the primary
	sentinels []*redisNode
}

// sentinelURL is session.store for the instances: every Sentinel, the
// master set, and the defaults for waiting on replicas made explicit.
func (f *redisFleet) sentinelURL() string {
	addrs := make([]string, len(f.sentinels))
	for i, s := range f.sentinels {
		addrs[i] = s.addr
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/0?master_set=" + masterSet +
		"&wait_replicas=auto&wait_timeout=500ms&dial_timeout=1s"
}

// startRedis starts replicas+1 data nodes (the first the primary) and
// sentinels Sentinels with quorum sentinels/2+1, and waits until every
// replica is in sync and every Sentinel knows the primary and the others.
func startRedis(ctx context.Context, ps *procs, bin string, replicas, sentinels int) (*redisFleet, error) {
	ports, err := freePorts(1 + replicas + sentinels)
	if err != nil {
		return nil, err
	}
	f := &redisFleet{}
	primary := ""
	for i := range 1 + replicas {
		name := fmt.Sprintf("redis-%d", i)
		dir := filepath.Join(ps.dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", ports[i])
		args := []string{
			"--port", strconv.Itoa(ports[i]), "--bind", "127.0.0.1", "--protected-mode", "yes",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
		}
		if i > 0 {
			args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(ports[0]))
		} else {
			primary = addr
		}
		p, err := ps.start(name, bin, args...)
		if err != nil {
			return nil, err
		}
		n := &redisNode{name: name, addr: addr, p: p}
		if err := poll(ctx, p, 10*time.Second, 20*time.Millisecond, func() bool {
			r, err := redisCmd(addr, "PING")
			return err == nil && r == "PONG"
		}); err != nil {
			return nil, fmt.Errorf("%s never answered PING: %w", name, err)
		}
		f.nodes = append(f.nodes, n)
	}
	for _, n := range f.nodes[1:] {
		if err := waitInSync(ctx, n); err != nil {
			return nil, err
		}
	}
	quorum := sentinels/2 + 1
	host, port, _ := net.SplitHostPort(primary)
	for i := range sentinels {
		name := fmt.Sprintf("sentinel-%d", i)
		dir := filepath.Join(ps.dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		sp := ports[1+replicas+i]
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n", sp, dir) +
			fmt.Sprintf("sentinel monitor %s %s %s %d\n", masterSet, host, port, quorum) +
			fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", masterSet, downAfter.Milliseconds()) +
			fmt.Sprintf("sentinel failover-timeout %s %d\n", masterSet, failoverTimeout.Milliseconds()) +
			fmt.Sprintf("sentinel parallel-syncs %s 1\n", masterSet)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", sp)
		p, err := ps.start(name, bin, conf, "--sentinel")
		if err != nil {
			return nil, err
		}
		s := &redisNode{name: name, addr: addr, p: p}
		if err := poll(ctx, p, 10*time.Second, 20*time.Millisecond, func() bool {
			got, err := sentinelMaster(addr)
			return err == nil && got == primary
		}); err != nil {
			return nil, fmt.Errorf("%s does not know the primary: %w", name, err)
		}
		f.sentinels = append(f.sentinels, s)
	}
	// Every Sentinel must see the others and every replica, or a
	// failover could not reach quorum or pick a replica.
	for _, s := range f.sentinels {
		if err := poll(ctx, s.p, 15*time.Second, 50*time.Millisecond, func() bool {
			info, err := redisCmd(s.addr, "SENTINEL", "MASTER", masterSet)
			return err == nil && field(info, "num-other-sentinels") == strconv.Itoa(sentinels-1) &&
				field(info, "num-slaves") == strconv.Itoa(replicas)
		}); err != nil {
			return nil, fmt.Errorf("%s does not see every Sentinel and replica: %w", s.name, err)
		}
	}
	return f, nil
}

// waitInSync waits until the data node n is a replica whose link to its
// primary is up and not syncing.
func waitInSync(ctx context.Context, n *redisNode) error {
	err := poll(ctx, n.p, 15*time.Second, 50*time.Millisecond, func() bool {
		info, err := redisCmd(n.addr, "INFO", "replication")
		return err == nil && strings.Contains(info, "role:slave") &&
			strings.Contains(info, "master_link_status:up") && strings.Contains(info, "master_sync_in_progress:0")
	})
	if err != nil {
		return fmt.Errorf("%s never came in sync: %w", n.name, err)
	}
	return nil
}

// primary asks the Sentinels which node is the primary; all the Sentinels
// that answer must agree.
func (f *redisFleet) primary() (*redisNode, error) {
	addr := ""
	for _, s := range f.sentinels {
		if s.p.exited() {
			continue
		}
		got, err := sentinelMaster(s.addr)
		if err != nil {
			return nil, err
		}
		if addr != "" && got != addr {
			return nil, fmt.Errorf("sentinels disagree: %s and %s", addr, got)
		}
		addr = got
	}
	for _, n := range f.nodes {
		if n.addr == addr {
			return n, nil
		}
	}
	return nil, fmt.Errorf("sentinels name %q, which is no data node", addr)
}

// settled waits until every Sentinel names the same primary other than
// old, that primary says it is one, and every other live data node is its
// replica, in sync.
func (f *redisFleet) settled(ctx context.Context, old *redisNode, timeout time.Duration) (*redisNode, error) {
	var cur *redisNode
	err := poll(ctx, nil, timeout, 100*time.Millisecond, func() bool {
		p, err := f.primary()
		if err != nil || p == old {
			return false
		}
		info, err := redisCmd(p.addr, "INFO", "replication")
		if err != nil || !strings.Contains(info, "role:master") {
			return false
		}
		live := 0
		for _, n := range f.nodes {
			if n == p || n.p.exited() {
				continue
			}
			live++
			ri, err := redisCmd(n.addr, "INFO", "replication")
			if err != nil || field(ri, "master_port") != portOf(p.addr) ||
				!strings.Contains(ri, "master_link_status:up") || !strings.Contains(ri, "master_sync_in_progress:0") {
				return false
			}
		}
		if field(info, "connected_slaves") != strconv.Itoa(live) {
			return false
		}
		cur = p
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("redis did not settle after the failover: %w", err)
	}
	return cur, nil
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// sentinelMaster is the primary's host:port as the Sentinel at addr
// reports it.
func sentinelMaster(addr string) (string, error) {
	r, err := redisCmd(addr, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterSet)
	if err != nil {
		return "", err
	}
	host, port, ok := strings.Cut(r, "\n")
	if !ok {
		return "", fmt.Errorf("sentinel answered %q", r)
	}
	return net.JoinHostPort(host, port), nil
}

// field is the value of "name:value" or of "name\nvalue" (an array
// reply flattened by redisCmd) in a reply.
func field(reply, name string) string {
	lines := strings.Split(reply, "\n")
	for i, l := range lines {
		l = strings.TrimRight(l, "\r")
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return v
		}
		if l == name && i+1 < len(lines) {
			return strings.TrimRight(lines[i+1], "\r")
		}
	}
	return ""
}

// redisCmd sends one command on a fresh connection and returns the reply:
// a simple or bulk string as is, an integer in decimal, an array's
// elements joined by newlines; an error reply is an error.
func redisCmd(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp4", addr, time.Second)
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
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn), 0)
}

func readReply(r *bufio.Reader, depth int) (string, error) {
	if depth > 4 {
		return "", errors.New("reply nested too deep")
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", nil
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(r, depth+1); err != nil {
				return "", err
			}
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
