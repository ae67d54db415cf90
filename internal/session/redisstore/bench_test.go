package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/session/redisstore"
)

// BenchmarkGet reads one 2 KiB entry (a typical sealed session), from the
// client-side cache and from Redis on loopback.
func BenchmarkGet(b *testing.B) { benchGet(b, false) }

// BenchmarkGetParallel reads from many goroutines at once: without the
// cache, throughput comes from auto-pipelining on the one connection.
func BenchmarkGetParallel(b *testing.B) { benchGet(b, true) }

func benchGet(b *testing.B, parallel bool) {
	srv := redistest.Start(b)
	ctx := context.Background()
	v := make([]byte, 2048)
	for _, bc := range []struct {
		name    string
		disable bool
	}{{"cache", false}, {"nocache", true}} {
		b.Run(bc.name, func(b *testing.B) {
			s := newStore(b, srv.URL, redisstore.Options{DisableCache: bc.disable})
			if err := s.Set(ctx, "k", v, time.Hour); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			if !parallel {
				for b.Loop() {
					if _, err := s.Get(ctx, "k"); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Get(ctx, "k"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSet writes a 2 KiB entry with two tags: one round trip carrying
// the script and its fence.
func BenchmarkSet(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	s := newStore(b, srv.URL, redisstore.Options{})
	v := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Set(ctx, "k", v, time.Hour, "sub:alice", "sid:1"); err != nil {
			b.Fatal(err)
		}
	}
}
