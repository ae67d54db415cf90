// Package gctune keeps the garbage collector from running on a tiny heap.
//
// A gateway's live heap is small (a few MB with a remote session store)
// while it allocates a little on every request, so with the default
// GOGC=100 it collects every few MB of allocation: hundreds of times a
// second under load. The mark work then costs as much CPU per request as
// the gateway's own logic. Tuner raises the GC percent so the heap goal is
// at least the live heap plus a fixed headroom (64 MiB by default), and
// lets it fall back to 100 as the live heap grows past the headroom (a
// memory store with many sessions), so the extra memory is bounded by the
// headroom and never a multiple of the live heap.
//
// The setting is process-wide; `cloakroom serve` runs one Tuner unless the
// GOGC environment variable is set, in which case the operator's choice
// stands. A GOMEMLIMIT, if set, still applies on top.
package gctune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultHeadroom is the allocation the heap may grow by between
// collections when the live heap is small.
const DefaultHeadroom = 64 << 20

// minPercent is Go's default: never collect more often than it would.
const minPercent = 100

// minHeap is the runtime's smallest heap goal at GOGC=100, which it scales
// with the percent: live heaps below it count as this size, or the
// percent would set a minimum goal far above live+headroom.
const minHeap = 4 << 20

// Percent is the GC percent that puts the heap goal at live+headroom, or
// at twice the live heap when that is larger.
func Percent(live, headroom uint64) int {
	live = max(live, minHeap)
	return int(max(headroom*100/live, minPercent))
}

// Run sets the GC percent from the live heap now and then every interval
// until ctx ends, then restores the percent it found. It changes the
// setting only when the new value differs by more than a tenth.
func Run(ctx context.Context, headroom uint64, interval time.Duration) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := CurrentPercent()
	defer debug.SetGCPercent(current)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		metrics.Read(sample)
		var live uint64
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = sample[0].Value.Uint64()
		}
		if p, now := Percent(live, headroom), CurrentPercent(); p*10 < now*9 || p*10 > now*11 {
			debug.SetGCPercent(p)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CurrentPercent is the GC percent in force (GOGC).
func CurrentPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}
