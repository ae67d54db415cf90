package gotool

import (
	"fmt"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a tool running in a process group of its own, so that Stop
// and Kill end whatever it started too.
type Process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's result, once exited is closed
}

// Start starts cmd (output, environment and directory set by the caller)
// in a process group of its own and waits, at most startTimeout, until
// ready answers 200; name is the tool's, for messages. A process that
// exits first, or is not ready in time, is an error (and is killed).
func Start(name string, cmd *exec.Cmd, ready string, startTimeout time.Duration) (*Process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	p := &Process{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited during start: %v", name, p.err)
		default:
		}
		resp, err := client.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("%s not ready after %v: %v", name, startTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the process group: SIGTERM, then SIGKILL if it lingers
// longer than grace.
func (p *Process) Stop(t testing.TB, grace time.Duration) {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		t.Logf("%s: still running %v after SIGTERM, killing it", p.name, grace)
		p.Kill()
	}
}

// Kill ends the process group at once and waits for the process.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}
