package main

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// graceProvider puts a grace period on the provider's refresh-token
// rotation, as production providers offer one (Okta's grace period,
// Auth0's reuse interval, Ory Hydra's grace_period): a rotated refresh
// token presented again within grace, by the same client, gets the very
// answer its first use got. Without it, an instance killed between the
// provider's answer and saving the rotated tokens leaves the session with
// a refresh token the provider has spent, and reuse detection then
// revokes the session: a loss no gateway can prevent. Each replay is
// counted, so the report shows how often the grace was needed.
type graceProvider struct {
	next  http.Handler
	grace time.Duration
	// replays counts answers replayed within the grace.
	replays atomic.Int64

	mu   sync.Mutex
	seen map[[32]byte]*graceAnswer // by hash of the refresh token
}

type graceAnswer struct {
	at     time.Time
	auth   [32]byte // hash of the client's Authorization header
	status int
	header http.Header
	body   []byte
}

// maxTokenForm bounds the token request body the wrapper reads.
const maxTokenForm = 64 << 10

func (g *graceProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.grace <= 0 || r.Method != http.MethodPost || r.URL.Path != "/token" {
		g.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenForm))
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("grant_type") != "refresh_token" || form.Get("refresh_token") == "" {
		g.next.ServeHTTP(w, r)
		return
	}
	key := sha256.Sum256([]byte(form.Get("refresh_token")))
	auth := sha256.Sum256([]byte(r.Header.Get("Authorization")))
	now := time.Now()
	g.mu.Lock()
	for k, a := range g.seen {
		if now.Sub(a.at) > g.grace {
			delete(g.seen, k)
		}
	}
	prev := g.seen[key]
	g.mu.Unlock()
	if prev != nil && prev.auth == auth {
		g.replays.Add(1)
		for k, v := range prev.header {
			w.Header()[k] = v
		}
		w.WriteHeader(prev.status)
		w.Write(prev.body)
		return
	}
	rec := httptest.NewRecorder()
	g.next.ServeHTTP(rec, r)
	res := rec.Result()
	if res.StatusCode == http.StatusOK {
		g.mu.Lock()
		g.seen[key] = &graceAnswer{at: now, auth: auth, status: res.StatusCode, header: res.Header.Clone(), body: rec.Body.Bytes()}
		g.mu.Unlock()
	}
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	w.Write(rec.Body.Bytes())
}
