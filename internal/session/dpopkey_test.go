package session

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// mapStore is the smallest Store: enough to plant a value written by an
// older release.
type mapStore struct{ m map[string][]byte }

func (s *mapStore) Get(_ context.Context, k string) ([]byte, error) {
	v, ok := s.m[k]
	if !ok {
		return nil, ErrNotFound
	}
	return v, nil
}
func (s *mapStore) Set(_ context.Context, k string, v []byte, _ time.Duration, _ ...string) error {
	s.m[k] = bytes.Clone(v)
	return nil
}
func (s *mapStore) Delete(_ context.Context, k string) error         { delete(s.m, k); return nil }
func (s *mapStore) Tagged(context.Context, string) ([]string, error) { return nil, nil }
func (s *mapStore) DeleteTagged(context.Context, string) error       { return nil }
func (s *mapStore) Close() error                                     { return nil }

// A session sealed before DPoPKey existed (its JSON has no dpop_key) loads
// with no key and its tokens intact; one saved with a key gets it back,
// from the store and from cookie mode, and the key costs the sealed value
// no more than its 33 bytes.
func TestDPoPKeyEncoding(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	keys := [][]byte{bytes.Repeat([]byte{7}, 32)}
	store := &mapStore{m: map[string][]byte{}}
	m, err := NewManager(Options{Store: store, Keys: keys, Now: clock})
	if err != nil {
		t.Fatal(err)
	}

	// Written by a release without dpop_key: the JSON as it was.
	id := newID()
	old := `{"sub":"alice","iss":"https://idp.example","logout_id":"x","claims":{"sub":"alice"},` +
		`"access_token":"at-1","refresh_token":"rt-1","token_type":"Bearer",` +
		`"created":"2025-06-01T11:00:00Z","last_seen":"2025-06-01T11:59:00Z","expires":"2025-06-01T23:00:00Z"}`
	key := m.lookup(0, "s:", id)
	store.m[key] = m.seal.seal([]byte(old), []byte(key))
	s, err := m.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("old session: got %v, want it loaded", err)
	}
	if s.DPoPKey != nil || s.AccessToken != "at-1" || s.RefreshToken != "rt-1" || s.TokenType != "Bearer" {
		t.Errorf("old session: got key %x, tokens %q %q %q; want no key and the old tokens", s.DPoPKey, s.AccessToken, s.RefreshToken, s.TokenType)
	}

	// Saved with a key: the key comes back, also past the decoded cache.
	dk := append([]byte{1}, bytes.Repeat([]byte{0x42}, 32)...)
	if err := m.Save(context.Background(), s); err != nil { // in the current encoding
		t.Fatal(err)
	}
	without, err := m.seal.open(0, store.m[key], []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	s.DPoPKey = dk
	if err := m.Save(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	with, err := m.seal.open(0, store.m[key], []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	// The record has the key's length either way; only its bytes are added.
	if grew, want := len(with)-len(without), len(dk); grew != want {
		t.Errorf("sealed session grew by %d bytes with the key, want %d", grew, want)
	}
	m.forget(key)
	got, err := m.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.DPoPKey, dk) {
		t.Errorf("store: got key %x, want %x", got.DPoPKey, dk)
	}

	// Cookie mode carries it.
	cm, err := NewManager(Options{CookieMode: true, Keys: keys, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	cm.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cm.Create(r.Context(), w, &Session{Subject: "alice", DPoPKey: dk}); err != nil {
			t.Fatal(err)
		}
		w.WriteHeader(http.StatusNoContent)
	})).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range rec.Result().Cookies() {
		if !strings.HasPrefix(c.Name, cm.CookieName()) {
			continue
		}
		req.AddCookie(c)
	}
	cs, err := cm.Load(req)
	if err != nil {
		t.Fatalf("cookie mode: %v", err)
	}
	if !bytes.Equal(cs.DPoPKey, dk) {
		t.Errorf("cookie mode: got key %x, want %x", cs.DPoPKey, dk)
	}
}
