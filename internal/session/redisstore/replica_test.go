package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/redisstore"
)

// TestDurableWritesWaitForReplica: with a replica, a durable Set returns
// only once the replica holds it; with the replica gone, a durable Set
// fails with ErrNotReplicated and a lossy one (the touch) still succeeds.
func TestDurableWritesWaitForReplica(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	ctx := context.Background()
	s := newStore(t, primary.URL+"?wait_timeout=3s", redisstore.Options{Prefix: "wait:"})

	if err := s.Set(ctx, "a", []byte("durable"), time.Minute); err != nil {
		t.Fatalf("durable Set with a replica: %v", err)
	}
	// WAIT answered: the replica already holds the write.
	got, err := replica.Client().Do(ctx, replica.Client().B().Get().Key("{wait}:v:a").Build()).ToString()
	if err != nil || got != "\x00durable" { // no tags, then the value
		t.Fatalf("replica holds %q %v, want durable", got, err)
	}

	replica.Stop()
	err = s.Set(ctx, "b", []byte("lost?"), time.Minute)
	if !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("durable Set without its replica: got %v, want ErrNotReplicated", err)
	}
	m := newManager(t, s)
	w := httptest.NewRecorder()
	sess := &session.Session{Subject: "alice"}
	err = m.Create(ctx, w, sess)
	if !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("Create without a replica: got %v, want ErrNotReplicated", err)
	}
	if c := w.Result().Cookies(); len(c) != 0 {
		t.Errorf("Create without a replica set cookies %v, want none", c)
	}
}

// TestTouchDoesNotWait: an idle-timeout touch and a replay marker are
// written without waiting for a replica, so they succeed while no replica
// answers; a Save of the session still waits, and fails.
func TestTouchDoesNotWait(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	ctx := context.Background()
	s := newStore(t, primary.URL+"?wait_timeout=3s", redisstore.Options{Prefix: "touch:"})
	clk := &fakeClock{t: time.Now()}
	m, err := session.NewManager(session.Options{Store: s, Keys: [][]byte{bytes.Repeat([]byte{7}, 32)}, Now: clk.Now, IdleTimeout: 20 * time.Minute, AbsoluteTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sess := &session.Session{Subject: "alice"}
	if err := m.Create(ctx, httptest.NewRecorder(), sess); err != nil {
		t.Fatalf("Create with a replica: %v", err)
	}
	replica.Stop()
	clk.t = clk.t.Add(2 * time.Minute)
	if err := m.Touch(ctx, sess); err != nil {
		t.Errorf("Touch without a replica: got %v, want success", err)
	}
	if first, err := m.FirstUse(ctx, s, s, "jti", time.Minute); !first || err != nil {
		t.Errorf("FirstUse without a replica: got %t %v, want true <nil>", first, err)
	}
	if err := m.Save(ctx, sess); !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Errorf("Save without a replica: got %v, want ErrNotReplicated", err)
	}
}

// TestStandaloneDoesNotWait: without any replica, durable writes do not
// wait: with a wait_timeout far beyond the context's deadline they still
// succeed. wait_replicas=1 makes them wait and fail.
func TestStandaloneDoesNotWait(t *testing.T) {
	srv := redistest.Start(t)
	tests := []struct {
		query   string
		wantErr bool
	}{
		{"?wait_timeout=1h", false},
		{"?wait_replicas=auto&wait_timeout=1h", false},
		{"?wait_replicas=0", false},
		{"?wait_replicas=1&wait_timeout=50ms", true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			s := newStore(t, srv.URL+tt.query, redisstore.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := s.Set(ctx, "k", []byte("v"), time.Minute)
			if got := errors.Is(err, redisstore.ErrNotReplicated); got != tt.wantErr || (err != nil && !tt.wantErr) {
				t.Fatalf("Set: got %v, want ErrNotReplicated %v", err, tt.wantErr)
			}
			if !tt.wantErr {
				if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
					t.Errorf("Get: got %q %v, want v", got, err)
				}
			}
		})
	}
}

func TestWaitURLErrors(t *testing.T) {
	for _, q := range []string{"?wait_replicas=-1", "?wait_replicas=x", "?wait_timeout=soon", "?wait_timeout=0s"} {
		_, err := redisstore.New(redisstore.Options{URL: "redis://127.0.0.1:1/0" + q})
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("wait_")) {
			t.Errorf("%s: got %v, want an error naming the parameter", q, err)
		}
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func newManager(t *testing.T, s session.Store) *session.Manager {
	t.Helper()
	m, err := session.NewManager(session.Options{Store: s, Keys: [][]byte{bytes.Repeat([]byte{7}, 32)}, IdleTimeout: 20 * time.Minute, AbsoluteTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPromotedPrimaryDoesNotWait: once the store's node is a promoted
// primary (a new replication ID) with no replica of its own, durable
// writes stop waiting for the replica the old one had.
func TestPromotedPrimaryDoesNotWait(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	other := redistest.Start(t)
	ctx := context.Background()
	s := newStore(t, primary.URL+"?wait_timeout=3s", redisstore.Options{Prefix: "promoted:"})
	if err := s.Set(ctx, "a", []byte("v"), time.Minute); err != nil {
		t.Fatalf("durable Set with a replica: %v", err)
	}
	replica.Stop()
	if err := s.Set(ctx, "b", []byte("v"), time.Minute); !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("durable Set without its replica: got %v, want ErrNotReplicated", err)
	}

	// Make primary a replica of other, then promote it: a new replication
	// ID, no replicas.
	admin := primary.Client()
	host, port, _ := net.SplitHostPort(other.Addr)
	if err := admin.Do(ctx, admin.B().Replicaof().Host(host).Port(mustAtoi(t, port)).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := admin.Do(ctx, admin.B().Info().Section("replication").Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("primary never synced with %s: %q", other.Addr, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := admin.Do(ctx, admin.B().Arbitrary("REPLICAOF", "NO", "ONE").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "c", []byte("v"), time.Minute); err != nil {
		t.Fatalf("durable Set on a promoted primary without replicas: %v", err)
	}
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
