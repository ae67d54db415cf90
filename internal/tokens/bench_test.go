package tokens_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/memstore"
	"github.com/cloakroom/cloakroom/internal/tokens"
)

// BenchmarkTokenCheck is the per-request token work when no refresh is
// due: "check" is the expiry test alone, "route" adds what every proxied
// user request pays (cookie, store read, unseal, decode, idle slide check),
// "policy" adds an authorization policy: two scopes, a claim and a path
// parameter bound to a claim.
func BenchmarkTokenCheck(b *testing.B) {
	store := memstore.New(nil)
	m, err := session.NewManager(session.Options{Store: store, Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}})
	if err != nil {
		b.Fatal(err)
	}
	src := tokens.New(tokens.Options{Sessions: m, Locker: store})
	s := &session.Session{
		Subject: "alice", AccessToken: string(bytes.Repeat([]byte("a"), 900)), RefreshToken: "rt",
		IDToken: string(bytes.Repeat([]byte("i"), 900)), AccessObtained: time.Now(), AccessExpiry: time.Now().Add(time.Hour),
		Claims: map[string]any{"name": "Alice", "email": "alice@example.com", "groups": []any{"a", "b"}, "tenant": "t-42"},
		Scopes: []string{"openid", "orders.read", "orders.write"},
	}
	rec := httptest.NewRecorder()
	if err := m.Create(context.Background(), rec, s); err != nil {
		b.Fatal(err)
	}
	cookie := rec.Result().Cookies()[0]
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		for b.Loop() {
			if _, err := src.UserToken(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	rt, err := src.Route(tokens.RouteOptions{Mode: tokens.User})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/x", nil)
	req.AddCookie(cookie)
	b.Run("route", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rt.Token(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	pol, err := src.Route(tokens.RouteOptions{Mode: tokens.User, Require: &tokens.Policy{
		Scopes: []string{"orders.read", "orders.write"},
		Claims: map[string][]string{"groups": {"b"}},
		Path:   map[string]string{"tenant": "{claims.tenant}"},
	}})
	if err != nil {
		b.Fatal(err)
	}
	preq := httptest.NewRequest(http.MethodGet, "/api/t-42/orders", nil)
	preq.SetPathValue("tenant", "t-42")
	preq.AddCookie(cookie)
	b.Run("policy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pol.Token(preq); err != nil {
				b.Fatal(err)
			}
		}
	})
}
