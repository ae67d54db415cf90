package main

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
	"strings"
	"syscall"
	"time"
)

// proc is a child process: a target, the upstream or redis-server. Its
// output goes to a log file in the run's temporary directory.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startProc starts bin with args, its stdout and stderr appended to
// logDir/name.log. With announce, it waits (at most 15s) for the
// "listening ADDR" line on stdout and returns ADDR.
func startProc(name, logDir, dir, bin string, announce bool, args ...string) (*proc, string, error) {
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stderr = logf
	// The child dies with this process, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout io.ReadCloser
	if announce {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			logf.Close()
			return nil, "", err
		}
	} else {
		cmd.Stdout = logf
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	if !announce {
		return p, "", nil
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(logf, r) // until the child exits
	}()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case line := <-lines:
		if addr, ok := strings.CutPrefix(line, "listening "); ok {
			return p, addr, nil
		}
		p.stop()
		return nil, "", fmt.Errorf("%s did not start (%q); log:\n%s", name, line, p.tail())
	case <-t.C:
		p.stop()
		return nil, "", fmt.Errorf("%s did not announce its address within 15s; log:\n%s", name, p.tail())
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// alive reports an error, with the log's tail, when the process has exited.
func (p *proc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); log:\n%s", p.name, p.err, p.tail())
	default:
		return nil
	}
}

// stop sends SIGTERM, and SIGKILL after 5s; it returns once the process is gone.
func (p *proc) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail is the end of the process's log.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	const keep = 4000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// freePort reserves a loopback port and releases it for a child to take.
func freePort() (int, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startRedis runs a throwaway redis-server on 127.0.0.1 with persistence
// off and waits (at most 10s) until it answers PING.
func startRedis(ctx context.Context, bin, logDir, dir string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	p, _, err := startProc("redis-server", logDir, dir, bin, false,
		"--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no",
		"--protected-mode", "yes", "--dir", dir)
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for range 200 {
		if err := p.alive(); err != nil {
			return nil, "", err
		}
		if redisPing(addr) == nil {
			return p, addr, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop()
	return nil, "", fmt.Errorf("redis-server never answered PING on %s; log:\n%s", addr, p.tail())
}

func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp4", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return errors.New("unexpected answer " + strings.TrimSpace(line))
	}
	return nil
}
