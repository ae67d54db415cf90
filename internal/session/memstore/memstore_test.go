package memstore_test

import (
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/memstore"
	"github.com/cloakroom/cloakroom/internal/session/sessiontest"
)

func TestConformance(t *testing.T) {
	sessiontest.Run(t, sessiontest.Options{
		New: func(t *testing.T, clk *sessiontest.Clock) session.Store { return memstore.New(clk.Now) },
	})
}

func TestEvictsOldest(t *testing.T) {
	s := memstore.NewStore(memstore.Options{MaxEntries: 3})
	ctx := t.Context()
	for _, k := range []string{"a", "b", "c"} {
		s.Set(ctx, k, []byte(k), time.Hour, "tag")
	}
	s.Set(ctx, "a", []byte("a2"), time.Hour, "tag") // rewriting makes a the newest
	s.Set(ctx, "d", []byte("d"), time.Hour, "tag")  // evicts b
	if _, err := s.Get(ctx, "b"); err != session.ErrNotFound {
		t.Errorf("b not evicted: %v", err)
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, err := s.Get(ctx, k); err != nil {
			t.Errorf("%s evicted: %v", k, err)
		}
	}
	if keys, _ := s.Tagged(ctx, "tag"); len(keys) != 3 || s.Len() != 3 {
		t.Errorf("after eviction: %d entries, tagged %v", s.Len(), keys)
	}
}
