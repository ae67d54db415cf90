package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// histogram counts latencies in log-linear buckets: 128 per power of two,
// so a reported quantile is within 0.8% of the true one.
type histogram struct {
	counts [58 << subBits]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const subBits = 7

func bucketOf(ns uint64) int {
	if ns < 1<<subBits {
		return int(ns)
	}
	g := bits.Len64(ns) - subBits // >= 1
	return g<<subBits + int(ns>>(g-1)) - 1<<subBits
}

// bucketMid is the middle of bucket i, in nanoseconds.
func bucketMid(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	g := i >> subBits
	lo := uint64(1<<subBits+i&(1<<subBits-1)) << (g - 1)
	return lo + (uint64(1)<<(g-1))/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the latency below which a fraction q of samples lie.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	if rank == h.n {
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketMid(i)), h.max)
		}
	}
	return h.max
}

// loadSpec is one measured run against one target.
type loadSpec struct {
	Workers  int
	Warmup   time.Duration
	Duration time.Duration
	// MaxRequests bounds the run in count as Duration bounds it in time.
	MaxRequests int64
	// Watch are the processes whose CPU is read at both ends of the
	// measured interval, by name.
	Watch map[string]int
	// Worker returns worker w's operation, which the worker then runs in
	// a loop: one request, or one whole login. An error counts as a
	// failed operation. ctx ends when the run is cancelled.
	Worker func(ctx context.Context, w int) (func() error, error)
}

// loadResult is what one run measured. CPU is in clock ticks per process.
type loadResult struct {
	Requests   int64         // operations completed in the measured interval
	Errors     int64         // failed operations, warm-up included
	FirstError string        // the first of them
	Elapsed    time.Duration // the measured interval
	Hist       *histogram
	CPUTicks   map[string]int64
	Truncated  bool // MaxRequests ended the run before Duration
}

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

// runLoad runs spec.Workers workers, each with one operation in flight: a
// warm-up that is not recorded, then spec.Duration recorded, with the
// watched processes' CPU read at both ends of the recorded interval.
func runLoad(ctx context.Context, spec loadSpec) (*loadResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		phase    atomic.Int32
		stop     atomic.Bool
		issued   atomic.Int64
		errCount atomic.Int64
		errOnce  sync.Once
		firstErr string
		wg       sync.WaitGroup
	)
	hists := make([]*histogram, spec.Workers)
	counts := make([]int64, spec.Workers)
	fail := func(msg string) {
		errCount.Add(1)
		errOnce.Do(func() { firstErr = msg })
	}
	ops := make([]func() error, spec.Workers)
	for w := range spec.Workers {
		op, err := spec.Worker(ctx, w)
		if err != nil {
			return nil, err
		}
		ops[w] = op
	}
	for w := range spec.Workers {
		hists[w] = &histogram{}
		wg.Go(func() {
			h, op := hists[w], ops[w]
			// Bounded in count (MaxRequests over all workers) and in time
			// (stop, set after Duration, or ctx).
			for !stop.Load() && issued.Add(1) <= spec.MaxRequests {
				t0 := time.Now()
				err := op()
				d := time.Since(t0)
				switch {
				case err != nil:
					if ctx.Err() == nil {
						fail(err.Error())
					}
				case phase.Load() == phaseMeasure:
					h.record(d)
					counts[w]++
				}
			}
		})
	}

	sleep := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	finish := func() {
		stop.Store(true)
		wg.Wait()
	}
	if err := sleep(spec.Warmup); err != nil {
		finish()
		return nil, err
	}
	before, err := readCPU(spec.Watch)
	if err != nil {
		finish()
		return nil, err
	}
	start := time.Now()
	phase.Store(phaseMeasure)
	deadline := time.NewTimer(spec.Duration)
	tick := time.NewTicker(50 * time.Millisecond)
	truncated := false
wait:
	for {
		select {
		case <-deadline.C:
			break wait
		case <-tick.C:
			if issued.Load() >= spec.MaxRequests {
				truncated = true
				break wait
			}
		case <-ctx.Done():
			break wait
		}
	}
	phase.Store(phaseDone)
	elapsed := time.Since(start)
	after, err := readCPU(spec.Watch)
	deadline.Stop()
	tick.Stop()
	finish()
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	res := &loadResult{Elapsed: elapsed, Hist: &histogram{}, CPUTicks: map[string]int64{}, Truncated: truncated}
	for w := range spec.Workers {
		res.Hist.merge(hists[w])
		res.Requests += counts[w]
	}
	res.Errors = errCount.Load()
	res.FirstError = firstErr
	for name, t := range after {
		res.CPUTicks[name] = t - before[name]
	}
	return res, nil
}

// requestWorker is the operation of a request scenario: send the request,
// read the whole answer, and check its status and length. A GET reuses one
// request per worker; a POST needs a fresh one for its body.
func requestWorker(client *http.Client, method, url string, hdr http.Header, body []byte, wantBytes int64) func(context.Context, int) (func() error, error) {
	return func(ctx context.Context, _ int) (func() error, error) {
		get, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil {
			return nil, err
		}
		get.Header = hdr.Clone()
		return func() error {
			req := get
			if body != nil {
				r, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
				if err != nil {
					return err
				}
				r.Header = get.Header // only read, by the transport
				req = r
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode != http.StatusOK:
				return fmt.Errorf("status %d", resp.StatusCode)
			case err != nil:
				return fmt.Errorf("reading body: %w", err)
			case wantBytes > 0 && n != wantBytes:
				return fmt.Errorf("body of %d bytes, want %d", n, wantBytes)
			}
			return nil
		}, nil
	}
}

// loginWorker is the operation of the login scenario: one whole sign-in,
// with its own cookie jar, on client's connections.
func loginWorker(client *http.Client, base string) func(context.Context, int) (func() error, error) {
	return func(ctx context.Context, _ int) (func() error, error) {
		return func() error {
			_, err := loginWith(ctx, client, base)
			return err
		}, nil
	}
}

// newClient is the load generator's client: keep-alive, enough idle
// connections for every worker, and every dial to 127.0.0.1 whatever the
// URL's host (the gateway is addressed as localhost, as browsers do).
func newClient(workers int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:         loopbackDial,
			MaxIdleConns:        2 * workers,
			MaxIdleConnsPerHost: 2 * workers,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// loopbackDial dials 127.0.0.1 at addr's port: nothing leaves the machine,
// and "localhost" never goes to ::1, where nothing listens.
func loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	return d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", port))
}

// Keys of the machine-wide counters readCPU adds to the processes'.
const (
	machineBusy  = "machine-busy"  // user+nice+system+irq+softirq of every CPU
	machineIRQ   = "machine-irq"   // irq+softirq, part of machineBusy
	machineSteal = "machine-steal" // taken by the hypervisor
)

// readCPU reads utime+stime, in clock ticks, of each process, and the
// machine-wide busy, interrupt and steal time from /proc/stat.
func readCPU(pids map[string]int) (map[string]int64, error) {
	out := make(map[string]int64, len(pids)+3)
	for name, pid := range pids {
		t, err := procCPUTicks(pid)
		if err != nil {
			return nil, fmt.Errorf("%s (pid %d): %w", name, pid, err)
		}
		out[name] = t
	}
	busy, irq, steal, err := machineTicks()
	if err != nil {
		return nil, fmt.Errorf("/proc/stat: %w", err)
	}
	out[machineBusy], out[machineIRQ], out[machineSteal] = busy, irq, steal
	return out, nil
}

// waitIdle waits, quarter-second sample at a time and at most maxWait, until
// the machine is busy less than threshold of its CPU time: other programs
// on a shared machine skew a run. It reports how long it waited and
// whether the machine got that quiet.
func waitIdle(ctx context.Context, maxWait time.Duration, threshold float64) (time.Duration, bool) {
	const sample = 250 * time.Millisecond // 50 ticks of 2 CPUs at CLK_TCK 100
	start := time.Now()
	for range int(maxWait/sample) + 1 {
		b0, _, s0, err := machineTicks()
		if err != nil {
			return 0, false
		}
		all0, err := allTicks()
		if err != nil {
			return 0, false
		}
		select {
		case <-ctx.Done():
			return time.Since(start), false
		case <-time.After(sample):
		}
		b1, _, s1, _ := machineTicks()
		all1, _ := allTicks()
		if total := all1 - all0; total > 0 && float64(b1-b0+s1-s0)/float64(total) < threshold {
			return time.Since(start), true
		}
		if time.Since(start) >= maxWait {
			break
		}
	}
	return time.Since(start), false
}

// allTicks is the sum of every field of /proc/stat's first line.
func allTicks() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var sum int64
	for _, f := range strings.Fields(line)[1:] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// machineTicks sums the first line of /proc/stat: busy time (user, nice,
// system, irq, softirq), the interrupt part of it (irq, softirq) and
// steal, in clock ticks. The kernel accounts softirq time, most of the
// loopback TCP work of the run, to no process: with large answers it is a
// good part of the machine's busy time.
func machineTicks() (busy, irq, steal int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, 0, errors.New("unexpected format")
	}
	var v [8]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return 0, 0, 0, err
		}
	}
	// user nice system idle iowait irq softirq steal
	return v[0] + v[1] + v[2] + v[5] + v[6], v[5] + v[6], v[7], nil
}

// procCPUTicks returns utime+stime of process pid from /proc/PID/stat
// (fields 14 and 15, all threads), in clock ticks.
func procCPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unexpected /proc stat format")
	}
	return utime + stime, nil
}

// clockTicks returns CLK_TCK from getconf, or 100 (the value on every
// common Linux build) when getconf is missing; the bool says which.
func clockTicks() (int64, bool) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n, true
		}
	}
	return 100, false
}
