package session_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/filestore"
	"github.com/cloakroom/cloakroom/internal/session/memstore"
	"github.com/cloakroom/cloakroom/internal/session/redisstore"
)

// realistic is a session as a typical provider fills it: an ID token and
// an access token, JWTs of 1,000 characters with RS256 signatures, a
// 200-character refresh token, and the ID token's claims (a dozen), as a
// login without userinfo stores them: 2,200 bytes of tokens in all. Each
// i has its own subject and IdP session id, in its ID token too, of the
// same lengths.
func realistic(i int) *session.Session {
	sub := fmt.Sprintf("%012d", 248289761001+i)
	sid := fmt.Sprintf("08a5019c-17e1-4977-8f42-%012x", 0x65a12843ea02+i) // UUID-shaped
	enc := base64.RawURLEncoding
	segs := strings.Split(realisticID, ".")
	payload, err := enc.DecodeString(segs[1])
	if err != nil {
		panic(err)
	}
	payload = bytes.Replace(payload, []byte(`"sub":"248289761001"`), []byte(`"sub":"`+sub+`"`), 1)
	payload = bytes.Replace(payload, []byte(`"sid":"08a5019c-17e1-4977-8f42-65a12843ea02"`), []byte(`"sid":"`+sid+`"`), 1)
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		panic(err)
	}
	return &session.Session{
		Subject: sub, Issuer: "https://idp.example.com", IdPSessionID: sid, LogoutID: "Fv7n2kq9Zt0bXcP1wQe3sA",
		AccessToken: realisticAccess, IDToken: segs[0] + "." + enc.EncodeToString(payload) + "." + segs[2],
		RefreshToken: realisticRefresh, AccessExpiry: time.Now().Add(time.Hour), AccessObtained: time.Now(), TokenType: "Bearer",
		Scopes: []string{"openid", "profile", "email", "offline_access"},
		Claims: claims,
	}
}

var (
	realisticPayload = []byte(`{"iss":"https://idp.example.com","sub":"248289761001","aud":"cloakroom","exp":1700003600,` +
		`"iat":1700000000,"auth_time":1700000000,"nonce":"n-0S6_WzA2Mj","sid":"08a5019c-17e1-4977-8f42-65a12843ea02",` +
		`"name":"Jane Doe","email":"jane@example.com","email_verified":true,"preferred_username":"jane",` +
		`"groups":["admins","users"],"at_hash":"MTIzNDU2Nzg5MDEyMzQ1Ng"`)
	realisticID     = benchJWT(realisticPayload, 1000)
	realisticAccess = benchJWT([]byte(`{"iss":"https://idp.example.com","sub":"248289761001","aud":["https://api.example.com"],`+
		`"exp":1700003600,"iat":1700000000,"jti":"b8f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d","client_id":"cloakroom",`+
		`"scope":"openid profile email offline_access","groups":["admins","users"],"roles":["reader","writer"],`+
		`"tenant":"acme"`), 1000)
	realisticRefresh = base64.RawURLEncoding.EncodeToString(pseudoRandom(150)) // 200 characters
)

// benchJWT is a JWS of exactly n characters: an RS256 header, the JSON
// object payload (left open, closed here after a filler member that brings
// the token to n characters) and a 256-byte signature.
func benchJWT(payload []byte, n int) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"RS256","kid":"2024-k1","typ":"JWT"}`))
	sig := enc.EncodeToString(pseudoRandom(256))
	for pad := 0; pad < n; pad++ {
		p := string(payload) + `,"x":"` + strings.Repeat("a", pad) + `"}`
		if tok := head + "." + enc.EncodeToString([]byte(p)) + "." + sig; len(tok) == n {
			if pad == 0 {
				return head + "." + enc.EncodeToString(append(payload, '}')) + "." + sig
			}
			return tok
		}
	}
	panic("benchJWT: no filler gives the length")
}

// pseudoRandom is n bytes that do not compress, the same on every run.
func pseudoRandom(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}

// BenchmarkLoad is one request's session load per store: cookie to
// ticket, store read, unseal, decode. memory-frontend is memory for a
// named frontend (several frontends on one gateway): the frontend's name
// goes into the HMAC's input, at no extra allocation.
func BenchmarkLoad(b *testing.B) {
	for _, tc := range []struct {
		name     string
		frontend string
		open     func(b *testing.B) session.Store
	}{
		{"memory", "", func(*testing.B) session.Store { return memstore.New(nil) }},
		{"memory-frontend", "shop", func(*testing.B) session.Store { return memstore.New(nil) }},
		{"file", "", func(b *testing.B) session.Store {
			st, err := filestore.Open(filestore.Options{Path: b.TempDir() + "/s.db"})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
		// Client-side caching: after the first read, loads are local hits.
		{"redis", "", func(b *testing.B) session.Store {
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
			benchLoad(b, st, tc.frontend)
		})
	}
}

func benchLoad(b *testing.B, st session.Store, frontend string) {
	m, err := session.NewManager(session.Options{Store: st, Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}, Frontend: frontend})
	if err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := m.Create(context.Background(), rec, realistic(0)); err != nil {
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

// BenchmarkFootprint reports what each store needs per realistic session
// once it holds CLOAKROOM_FOOTPRINT_N of them (default footprintN, so that
// `-bench .` stays quick; docs/performance.md quotes 1000000). The file store holds
// at most footprintFileMax of them unless CLOAKROOM_FOOTPRINT_FILE_N sets
// its count: it syncs every write, 400 to 2000 a second on a 2-vCPU VM's
// disk, so a million would take half an hour or more there. With the
// temporary directory on tmpfs (TMPDIR=/dev/shm), where a sync costs
// nothing, a million take about 4 minutes, and the file is the same: its
// layout and size do not depend on the medium. Past 16 MB the file grows
// by 16 MB at a time, so its size may exceed the pages in use by that
// much. Each session has its own subject and IdP session id, in its ID
// token too, so each carries its own two tags, as after a million logins.
// The sessions metric is the count a figure is for.
//
//   - memory: the Go heap the store holds (heap-bytes/session);
//   - file: the bbolt file's size on disk (disk-bytes/session) and the Go
//     heap the open store holds (heap-bytes/session);
//   - redis: the growth of redis-server's INFO memory used_memory
//     (redis-bytes/session).
//
// Every sub-benchmark also reports token-bytes/session, the raw length of
// the access, refresh and ID tokens; stored-bytes/session, the sealed value
// the Manager hands the store; and x-token, the store's main figure (heap,
// disk, used_memory) over token-bytes: the overhead in one number.
//
// Sessions are written through the Manager, as logins write them, from
// several goroutines: the stores have no batch API, but redisstore's client
// pipelines concurrent commands on its connection. filestore commits and
// syncs every write on its own, so the file store is by far the slowest
// to fill, however many goroutines write.
func BenchmarkFootprint(b *testing.B) {
	n := envCount("CLOAKROOM_FOOTPRINT_N", footprintN)
	s := realistic(0)
	tokenBytes := float64(len(s.AccessToken) + len(s.RefreshToken) + len(s.IDToken))
	report := func(b *testing.B, n int, main float64, unit string, stored int64) {
		b.ReportMetric(main/float64(n), unit)
		b.ReportMetric(tokenBytes, "token-bytes/session")
		b.ReportMetric(float64(stored)/float64(n), "stored-bytes/session")
		b.ReportMetric(main/float64(n)/tokenBytes, "x-token")
		b.ReportMetric(float64(n), "sessions")
	}

	b.Run("memory", func(b *testing.B) {
		for b.Loop() {
			before := liveHeap()
			st := memstore.New(nil)
			stored := fillSessions(b, st, n, runtime.GOMAXPROCS(0))
			heap := liveHeap() - before
			if st.Len() != n {
				b.Fatalf("store holds %d sessions, want %d", st.Len(), n)
			}
			runtime.KeepAlive(st)
			report(b, n, float64(heap), "heap-bytes/session", stored)
		}
	})

	b.Run("file", func(b *testing.B) {
		n := envCount("CLOAKROOM_FOOTPRINT_FILE_N", min(n, footprintFileMax))
		for b.Loop() {
			path := b.TempDir() + "/s.db"
			before := liveHeap()
			// No sweeper: nothing expires, and a sweep would scan the file
			// while it is being filled.
			st, err := filestore.Open(filestore.Options{Path: path, SweepInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			stored := fillSessions(b, st, n, 4)
			heap := liveHeap() - before
			fi, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			runtime.KeepAlive(st)
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			report(b, n, float64(fi.Size()), "disk-bytes/session", stored)
			b.ReportMetric(float64(heap)/float64(n), "heap-bytes/session")
		}
	})

	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b) // fails rather than skips with CLOAKROOM_REQUIRE_INTEGRATION
		admin := srv.Client()
		ctx := context.Background()
		st, err := redisstore.New(redisstore.Options{URL: srv.URL})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		for b.Loop() {
			if err := admin.Do(ctx, admin.B().Flushall().Sync().Build()).Error(); err != nil {
				b.Fatal(err)
			}
			before := usedMemory(b, admin)
			stored := fillSessions(b, st, n, 64)
			used := usedMemory(b, admin) - before
			if keys, err := admin.Do(ctx, admin.B().Dbsize().Build()).AsInt64(); err != nil || keys < int64(n) {
				b.Fatalf("DBSIZE %d %v, want at least %d", keys, err, n)
			}
			report(b, n, float64(used), "redis-bytes/session", stored)
		}
	})
}

// BenchmarkFootprint's session counts: by default, and at most for the
// file store (a few minutes of writes).
const (
	footprintN       = 10_000
	footprintFileMax = 100_000
)

// envCount is the positive integer in environment variable name, or def.
func envCount(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// liveHeap collects garbage and returns the live heap.
func liveHeap() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// usedMemory is redis-server's INFO memory used_memory.
func usedMemory(b *testing.B, c rueidis.Client) int64 {
	b.Helper()
	info, err := c.Do(context.Background(), c.B().Info().Section("memory").Build()).ToString()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("INFO memory: used_memory %q: %v", v, err)
			}
			return n
		}
	}
	b.Fatalf("INFO memory has no used_memory:\n%s", info)
	return 0
}

// fillSessions creates n realistic sessions in st through a Manager, from
// workers goroutines, and returns the total length of the sealed values
// the Manager wrote. The Manager, with its cache of decoded sessions, is
// garbage once it returns, so it does not count in the store's heap.
func fillSessions(b testing.TB, st session.Store, n, workers int) (stored int64) {
	b.Helper()
	sz := &sizeStore{Store: st}
	m, err := session.NewManager(session.Options{Store: sz, Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			w := httptest.NewRecorder()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				s := realistic(int(i))
				if err := m.Create(ctx, w, s); err != nil {
					b.Errorf("session %d: %v", i, err)
					next.Store(int64(n)) // stop the others
					return
				}
				w.Header().Del("Set-Cookie")
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return sz.n.Load()
}

// sizeStore counts the bytes written to a Store.
type sizeStore struct {
	session.Store
	n atomic.Int64
}

func (s *sizeStore) Set(ctx context.Context, key string, v []byte, ttl time.Duration, tags ...string) error {
	s.n.Add(int64(len(v)))
	return s.Store.Set(ctx, key, v, ttl, tags...)
}
