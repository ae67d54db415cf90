package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/session/redisstore"
)

// TestDurableWritesWaitForEveryReplica: with two replicas, a durable Set
// and a Lock wait for both. Once one is promoted away (what a Sentinel
// failover does first, while the old primary still takes writes), the
// other still acknowledges the old primary's writes, which the promoted
// replica never receives: a Set must then fail with ErrNotReplicated
// rather than succeed on that one acknowledgement, also after the store
// asked the primary again, which now reports one replica; and a Lock, which
// guards a refresh that spends the refresh token, must fail the same way
// and leave the lock free. FirstUse, whose lock and marker are Lossy,
// still works.
func TestDurableWritesWaitForEveryReplica(t *testing.T) {
	primary := redistest.Start(t)
	promoted := redistest.StartReplica(t, primary)
	redistest.StartReplica(t, primary) // the follower
	ctx := context.Background()
	s := newStore(t, primary.URL+"?wait_timeout=3s", redisstore.Options{Prefix: "every:"})

	if err := s.Set(ctx, "a", []byte("v"), time.Minute); err != nil {
		t.Fatalf("durable Set with two replicas: %v", err)
	}
	unlock, err := s.Lock(ctx, "refresh", time.Minute)
	if err != nil {
		t.Fatalf("Lock with two replicas: %v", err)
	}
	unlock()

	admin := promoted.Client()
	if err := admin.Do(ctx, admin.B().Arbitrary("REPLICAOF", "NO", "ONE").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"b", "c"} {
		err := s.Set(ctx, key, []byte("v"), time.Minute)
		if !errors.Is(err, redisstore.ErrNotReplicated) {
			t.Fatalf("durable Set %q with one of two replicas promoted away: got %v, want ErrNotReplicated", key, err)
		}
	}
	if _, err := s.Lock(ctx, "refresh", time.Minute); !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("Lock with one of two replicas promoted away: got %v, want ErrNotReplicated", err)
	}
	pc := primary.Client()
	if n, err := pc.Do(ctx, pc.B().Exists().Key("{every}:l:refresh").Build()).AsInt64(); err != nil || n != 0 {
		t.Errorf("the lock a failed Lock took is still held (%d, %v), want released", n, err)
	}
	m := newManager(t, s)
	if first, err := m.FirstUse(ctx, s, s, "jti-1", time.Minute); err != nil || !first {
		t.Errorf("FirstUse with one of two replicas promoted away: got %v, %v; want true, nil", first, err)
	}
}
