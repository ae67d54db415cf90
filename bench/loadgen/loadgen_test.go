package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestLoadSmoke builds cloakroom and loadgen and runs the whole load
// benchmark in --quick mode. It is opt-in (CLOAKROOM_LOAD_SMOKE=1).
func TestLoadSmoke(t *testing.T) {
	if os.Getenv("CLOAKROOM_LOAD_SMOKE") != "1" {
		t.Skip("opt-in: this is a benchmark, not a test (about 20s of load on every core); set CLOAKROOM_LOAD_SMOKE=1 to run it")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	for name, pkg := range map[string]string{
		"cloakroom": "github.com/cloakroom/cloakroom/cmd/cloakroom",
		"loadgen":   "github.com/cloakroom/cloakroom/bench/loadgen",
	} {
		if out, err := exec.CommandContext(ctx, goBin, "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	out := filepath.Join(dir, "results")
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "loadgen"), "--quick", "--wait-idle", "0", "--cloakroom", filepath.Join(dir, "cloakroom"), "--out", out)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("loadgen: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	t.Logf("\n%s", &stdout)

	raw, err := os.ReadFile(filepath.Join(out, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(allTargets) {
		t.Fatalf("%d results, want one per target (%v)", len(rep.Results), allTargets)
	}
	for _, r := range rep.Results {
		if r.Skipped != "" {
			if r.Target != targetRedis || os.Getenv("CLOAKROOM_REQUIRE_INTEGRATION") == "1" {
				t.Errorf("%s skipped: %s", r.Target, r.Skipped)
			}
			continue
		}
		if r.Requests <= 0 || r.Errors != 0 {
			t.Errorf("%s: %d requests, %d errors (first: %s); want >0 and 0", r.Target, r.Requests, r.Errors, r.FirstError)
		}
		if r.CPUMicrosPerReq <= 0 {
			t.Errorf("%s: no CPU measured for the target process", r.Target)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 100_000; i++ {
		h.record(time.Duration(i) * time.Microsecond) // 1µs .. 100ms, uniform
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{.5, 50 * time.Millisecond}, {.99, 99 * time.Millisecond}, {.001, 100 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < -0.01 || d > 0.01 {
			t.Errorf("quantile(%v) = %v, want %v ±1%%", c.q, got, c.want)
		}
	}
	if h.quantile(1) != 100*time.Millisecond {
		t.Errorf("quantile(1) = %v, want the maximum", h.quantile(1))
	}
	for _, ns := range []uint64{0, 1, 127, 128, 129, 255, 256, 1e3, 1e6, 1e9, 1 << 62} {
		i := bucketOf(ns)
		if mid := bucketMid(i); float64(mid) < float64(ns)*0.99 || float64(mid) > float64(ns)*1.01+1 {
			t.Errorf("bucketMid(bucketOf(%d)) = %d, more than 1%% off", ns, mid)
		}
	}
}

func TestProcCPUTicks(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	deadline := time.Now().Add(5 * time.Second)
	start, err := procCPUTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the counter moves (a tick is usually 10ms).
	x := 0
	for i := 0; i < 1e10 && time.Now().Before(deadline); i++ {
		x += i
		if i%1e6 == 0 {
			if now, _ := procCPUTicks(os.Getpid()); now > start {
				return
			}
		}
	}
	t.Fatalf("CPU ticks did not move after 5s of work (%d)", x)
}
