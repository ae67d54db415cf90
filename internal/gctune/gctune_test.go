package gctune

import (
	"context"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 1600},         // unknown yet: the runtime's 4 MiB minimum
		{1 * mib, 1600},   // the same: goal 64 MiB
		{4 * mib, 1600},   // goal 68 MiB: live + 64
		{16 * mib, 400},   // goal 80 MiB
		{64 * mib, 100},   // goal 128 MiB: headroom and doubling agree
		{1024 * mib, 100}, // a large live heap: Go's default, no multiple of it
	} {
		if got := Percent(c.live, 64*mib); got != c.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", c.live/mib, got, c.want)
		}
	}
}

func TestRunSetsAndRestores(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Run(ctx, 1<<30, time.Hour) // 1 GiB of headroom: far above 100 for a test's heap
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := CurrentPercent()
		if p >= 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GC percent is %d, want at least 1000", p)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if p := CurrentPercent(); p != 100 {
		t.Fatalf("GC percent after Run is %d, want the 100 it found", p)
	}
}
