package session

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testJWT is a JWS compact serialisation with payload claims and a
// signature of sigLen bytes.
func testJWT(t testing.TB, claims map[string]any, sigLen int) string {
	t.Helper()
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, sigLen)
	for i := range sig {
		sig[i] = byte(i*131 + 7)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","kid":"k1","typ":"JWT"}`)) + "." + enc.EncodeToString(p) + "." + enc.EncodeToString(sig)
}

// sameSession compares sessions field by field, times by instant.
func sameSession(t *testing.T, got, want *Session) {
	t.Helper()
	g, w := *got, *want
	for _, p := range []struct{ g, w *time.Time }{
		{&g.AccessExpiry, &w.AccessExpiry}, {&g.AccessObtained, &w.AccessObtained},
		{&g.Created, &w.Created}, {&g.LastSeen, &w.LastSeen}, {&g.Expires, &w.Expires},
	} {
		if !p.g.Equal(*p.w) {
			t.Errorf("time: got %v, want %v", *p.g, *p.w)
		}
		*p.g, *p.w = time.Time{}, time.Time{}
	}
	g.ID, g.Handle, w.ID, w.Handle = "", "", "", ""
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got %+v,\nwant %+v", g, w)
	}
}

// Every session decodes to what was encoded: tokens byte for byte whatever
// their form, claims whether they are the ID token's, differ from it or
// have no ID token to come from.
func TestRecordRoundTrip(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)
	idClaims := map[string]any{"iss": "https://idp.example", "sub": "alice", "aud": "app", "exp": 1.7e9,
		"iat": 1.6e9, "sid": "s-1", "name": "Alice", "groups": []any{"a", "b"}, "email_verified": true,
		"address": map[string]any{"country": "NZ"}, "nothing": nil}
	idToken := testJWT(t, idClaims, 256)
	withoutName := func() map[string]any {
		c := cloneClaims(t, idClaims)
		delete(c, "name")
		return c
	}
	withUserInfo := func() map[string]any {
		c := cloneClaims(t, idClaims)
		c["email"], c["name"] = "alice@example.com", "Alice Liddell"
		return c
	}
	for _, tc := range []struct {
		name     string
		frontend string
		s        Session
	}{
		{"empty", "", Session{}},
		{"full", "shop", Session{Subject: "alice", Issuer: "https://idp.example", IdPSessionID: "s-1", SessionState: "st",
			LogoutID: "lo", Claims: cloneClaims(t, idClaims), IDToken: idToken, AccessToken: testJWT(t, map[string]any{"scope": "openid"}, 64),
			RefreshToken: "opaque-refresh_token", TokenType: "DPoP", AccessExpiry: now.Add(time.Hour), AccessObtained: now,
			Scopes: []string{"openid", "email"}, DPoPKey: append([]byte{1}, bytes.Repeat([]byte{2}, 32)...),
			ClientIP: "203.0.113.9", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", Created: now, LastSeen: now.Add(time.Minute),
			Expires: now.Add(12 * time.Hour)}},
		{"fields that differ from the claims", "", Session{Subject: "bob", IdPSessionID: "s-2", IDToken: idToken, Claims: cloneClaims(t, idClaims)}},
		{"claims that are not strings", "", Session{Subject: "1", IDToken: testJWT(t, map[string]any{"sub": 1.0, "sid": []any{"s"}}, 8), IdPSessionID: "s"}},
		{"claims with userinfo", "", Session{Subject: "alice", IDToken: idToken, Claims: withUserInfo(), Expires: now}},
		{"claims without a payload claim", "", Session{IDToken: idToken, Claims: withoutName()}},
		{"empty claims with an id token", "", Session{IDToken: idToken, Claims: map[string]any{}}},
		{"claims without an id token", "", Session{Claims: cloneClaims(t, idClaims)}},
		{"empty claims", "", Session{Claims: map[string]any{}}},
		{"opaque id token", "", Session{IDToken: "not a jwt", Claims: map[string]any{"sub": "x"}}},
		{"id token payload not an object", "", Session{IDToken: "e30.WzFd.c2ln", Claims: map[string]any{"sub": "x"}}},
		{"times before 1970", "", Session{Created: time.Date(1960, 1, 1, 0, 0, 0, 1, time.UTC), Expires: time.Unix(-1, 999999999)}},
		{"tokens that only look like base64url", "", Session{
			AccessToken:  "QR",         // nonzero trailing bits: re-encodes as QQ
			RefreshToken: "YWJj\nZGVm", // a newline the decoder would skip
			IDToken:      "YQ==.YQ",    // padding
		}},
		{"token segments", "", Session{AccessToken: "a..b", RefreshToken: "eyJ9..eA.eA.", IDToken: "A"}},
		{"non-ASCII", "", Session{Subject: "ユーザー", UserAgent: "\x00\xff", AccessToken: "tök.en"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := encodeRecord(tc.frontend, &tc.s)
			if err != nil {
				t.Fatal(err)
			}
			got, frontend, err := decodeRecord(rec)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if frontend != tc.frontend {
				t.Errorf("frontend: got %q, want %q", frontend, tc.frontend)
			}
			sameSession(t, got, &tc.s)
		})
	}
}

func cloneClaims(t testing.TB, c map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// A record keeps JWTs as their decoded bytes and does not repeat the ID
// token's claims: a session of JWTs costs less than its tokens' text, and
// claims equal to the ID token's cost two bytes more than none.
func TestRecordCompact(t *testing.T) {
	idClaims := map[string]any{"iss": "https://idp.example", "sub": "alice", "aud": "app", "exp": 1.7e9,
		"name": "Alice Liddell", "email": "alice@example.com", "groups": []any{"admins", "users"}}
	s := Session{Subject: "alice", IDToken: testJWT(t, idClaims, 256), AccessToken: testJWT(t, idClaims, 256),
		Claims: cloneClaims(t, idClaims)}
	with, err := encodeRecord("", &s)
	if err != nil {
		t.Fatal(err)
	}
	s.Claims = nil
	without, err := encodeRecord("", &s)
	if err != nil {
		t.Fatal(err)
	}
	if extra := len(with) - len(without); extra != 2 {
		t.Errorf("claims equal to the ID token's cost %d bytes, want 2", extra)
	}
	tokens := len(s.IDToken) + len(s.AccessToken)
	if limit := tokens * 8 / 10; len(with) > limit {
		t.Errorf("record of %d bytes for %d bytes of tokens, want at most %d", len(with), tokens, limit)
	}
}

// Malformed records fail to decode, whatever byte they end at, and never
// panic.
func TestRecordMalformed(t *testing.T) {
	now := time.Now()
	s := Session{Subject: "alice", IDToken: testJWT(t, map[string]any{"sub": "alice", "n": 1.0}, 32),
		Claims: map[string]any{"sub": "alice", "n": 1.0, "extra": "x"}, AccessToken: "a.b.c", Scopes: []string{"openid"},
		DPoPKey: []byte{1, 2, 3}, Created: now, Expires: now}
	rec, err := encodeRecord("shop", &s)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(rec) {
		if _, _, err := decodeRecord(rec[:n]); err == nil {
			t.Errorf("record cut at %d of %d bytes: decoded, want an error", n, len(rec))
		}
	}
	for _, bad := range [][]byte{nil, {codecVersion + 1}, append(bytes.Clone(rec), 0), []byte("{not json")} {
		if _, _, err := decodeRecord(bad); err == nil {
			t.Errorf("record %q: decoded, want an error", bad)
		}
	}
}

// Sessions sealed by earlier releases, as JSON, still load after an
// upgrade, for a named frontend too (the implicit frontend's fixture is
// sessiontest.Legacy, checked against every store); saving one rewrites
// it in the current encoding, which loads the same.
func TestRecordJSONStillLoads(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	store := &mapStore{m: map[string][]byte{}}
	m, err := NewManager(Options{Store: store, Keys: [][]byte{bytes.Repeat([]byte{3}, 32)}, Frontend: "shop",
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	idToken := testJWT(t, map[string]any{"sub": "alice", "sid": "s-1"}, 32)
	want := &Session{Subject: "alice", Issuer: "https://idp.example", IdPSessionID: "s-1", LogoutID: "lo",
		Claims: map[string]any{"sub": "alice", "sid": "s-1", "email": "a@example.com"}, IDToken: idToken,
		AccessToken: "at", RefreshToken: "rt", TokenType: "Bearer", Scopes: []string{"openid"},
		Created: now, LastSeen: now, Expires: now.Add(time.Hour)}
	// The previous encoding, verbatim: the session's JSON with its frontend.
	old, err := json.Marshal(storedSession{Frontend: "shop", Session: want})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(old, []byte(`{"frontend":"shop","sub":"alice",`)) {
		t.Fatalf("the previous encoding: got %.40s...", old)
	}
	id := newID()
	key := m.HandleOf(id)
	store.m[key] = m.seal.seal(old, m.aad(key))
	got, err := m.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("JSON record: %v, want it loaded", err)
	}
	sameSession(t, got, want)
	if err := m.Save(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	plain, err := m.seal.open(0, store.m[key], m.aad(key))
	if err != nil || plain[0] != codecVersion {
		t.Fatalf("saved again: got %.1q, %v; want the current encoding", plain, err)
	}
	m.forget(key)
	again, err := m.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	sameSession(t, again, want)

	// A JSON record of another frontend is refused as before.
	other, err := json.Marshal(storedSession{Frontend: "admin", Session: want})
	if err != nil {
		t.Fatal(err)
	}
	id2 := newID()
	store.m[m.HandleOf(id2)] = m.seal.seal(other, m.aad(m.HandleOf(id2)))
	if _, err := m.Get(context.Background(), id2); !errors.Is(err, ErrNotFound) {
		t.Errorf("another frontend's JSON record: got %v, want ErrNotFound", err)
	}
	if !strings.Contains(string(plain), "a@example.com") {
		t.Errorf("claims that differ from the ID token's: not in the record")
	}
}

// BenchmarkRecord is the cost of a session record on a decoded-session
// cache miss (decode: another instance wrote the session, or the cache
// evicted it) and on a write (encode), in the current encoding and in the
// JSON of earlier versions, for a session of two 1,000-character JWTs
// whose ID token carries its claims.
func BenchmarkRecord(b *testing.B) {
	t := b
	claims := map[string]any{"iss": "https://idp.example.com", "sub": "248289761001", "aud": "cloakroom",
		"exp": 1.7e9, "iat": 1.7e9, "auth_time": 1.7e9, "sid": "08a5019c-17e1-4977-8f42-65a12843ea02",
		"name": "Jane Doe", "email": "jane@example.com", "email_verified": true, "preferred_username": "jane",
		"groups": []any{"admins", "users"}, "filler": strings.Repeat("x", 200)}
	now := time.Now()
	s := &Session{Subject: "248289761001", Issuer: "https://idp.example.com", IdPSessionID: "08a5019c-17e1-4977-8f42-65a12843ea02",
		LogoutID: "Fv7n2kq9Zt0bXcP1wQe3sA", IDToken: testJWT(t, claims, 256), AccessToken: testJWT(t, claims, 256),
		RefreshToken: strings.Repeat("r", 200), TokenType: "Bearer", Claims: cloneClaims(t, claims),
		Scopes: []string{"openid", "profile"}, AccessExpiry: now, Created: now, LastSeen: now, Expires: now}
	for _, enc := range []struct {
		name   string
		encode func() ([]byte, error)
	}{
		{"binary", func() ([]byte, error) { return encodeRecord("", s) }},
		{"json", func() ([]byte, error) { return json.Marshal(storedSession{Session: s}) }},
	} {
		rec, err := enc.encode()
		if err != nil {
			b.Fatal(err)
		}
		b.Run("decode/"+enc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.ReportMetric(float64(len(rec)), "record-bytes")
			for b.Loop() {
				if _, _, err := decodeRecord(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("encode/"+enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.encode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
