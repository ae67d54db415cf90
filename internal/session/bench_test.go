package session_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/filestore"
	"github.com/cloakroom/cloakroom/internal/session/memstore"
	"github.com/cloakroom/cloakroom/internal/session/redisstore"
)

// realistic is a session as a typical provider fills it: three JWTs of
// about a kilobyte and a dozen claims.
func realistic() *session.Session {
	jwt := string(bytes.Repeat([]byte("eyJhbGciOiJSUzI1NiJ9"), 50))
	return &session.Session{
		Subject: "248289761001", Issuer: "https://idp.example.com", IdPSessionID: "08a5019c-17e1-4977-8f42-65a12843ea02",
		LogoutID: "Fv7n2kq9Zt0bXcP1wQe3sA", AccessToken: jwt, IDToken: jwt, RefreshToken: jwt[:200],
		AccessExpiry: time.Now().Add(time.Hour), AccessObtained: time.Now(), TokenType: "Bearer",
		Scopes: []string{"openid", "profile", "email", "offline_access"},
		Claims: map[string]any{"sub": "248289761001", "name": "Jane Doe", "email": "jane@example.com", "email_verified": true,
			"preferred_username": "jane", "groups": []any{"admins", "users"}, "auth_time": 1.7e9, "sid": "08a5019c"},
	}
}

// BenchmarkLoad is one request's session load per store: cookie to
// ticket, store read, unseal, decode.
func BenchmarkLoad(b *testing.B) {
	for _, tc := range []struct {
		name string
		open func(b *testing.B) session.Store
	}{
		{"memory", func(*testing.B) session.Store { return memstore.New(nil) }},
		{"file", func(b *testing.B) session.Store {
			st, err := filestore.Open(filestore.Options{Path: b.TempDir() + "/s.db"})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
		// Client-side caching: after the first read, loads are local hits.
		{"redis", func(b *testing.B) session.Store {
			st, err := redisstore.New(redisstore.Options{URL: redistest.Start(b).URL})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st := tc.open(b)
			defer st.Close()
			benchLoad(b, st, nil)
		})
	}
}

func benchLoad(b *testing.B, st session.Store, mgr *session.Manager) {
	m, err := session.NewManager(session.Options{Store: st, Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}})
	if err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := m.Create(context.Background(), rec, realistic()); err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(rec.Result().Cookies()[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Load(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryFootprint reports the heap the memory store needs per
// realistic session. It stores CLOAKROOM_FOOTPRINT_N sessions (default
// 100000; the README's figure is for 1000000).
func BenchmarkMemoryFootprint(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CLOAKROOM_FOOTPRINT_N")); err == nil && v > 0 {
		n = v
	}
	for b.Loop() {
		st := memstore.New(nil)
		m, err := session.NewManager(session.Options{Store: st, Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}})
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ctx := context.Background()
		w := httptest.NewRecorder()
		for i := range n {
			s := realistic()
			s.Subject = fmt.Sprint("user-", i)
			if err := m.Create(ctx, w, s); err != nil {
				b.Fatal(err)
			}
			w.Header().Del("Set-Cookie")
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "bytes/session")
		b.ReportMetric(float64(st.Len()), "sessions")
		runtime.KeepAlive(st)
	}
}
