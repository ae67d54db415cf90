package bff_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/bff"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/memstore"
	"github.com/cloakroom/cloakroom/internal/tokens"
)

// frontend is one frontend's half of a gateway: its session manager and
// its /bff/* handler, over a store shared with the other frontends.
type frontend struct {
	sessions *session.Manager
	mux      *http.ServeMux
}

// twoFrontends serves frontends "shop" and "admin", clients of one
// provider, over one store and one set of session keys, as one gateway
// serving both would.
func twoFrontends(t *testing.T) (*idp.Provider, map[string]*frontend) {
	t.Helper()
	var p *idp.Provider
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	var err error
	p, err = idp.New(idp.Options{
		Issuer: srv.URL,
		Clients: []idp.Client{
			{ID: "shop", Secret: "shop-secret", RedirectURIs: []string{"https://shop.example/bff/callback"}},
			{ID: "admin", Secret: "admin-secret", RedirectURIs: []string{"https://shop.example/admin/bff/callback"}},
		},
		Users: []idp.User{{Subject: "alice", Username: "alice", Password: "pw"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New(nil)
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	fs := map[string]*frontend{}
	for name, path := range map[string]string{"shop": "/", "admin": "/admin/"} {
		m, err := session.NewManager(session.Options{Store: store, Keys: keys, Frontend: name, CookiePath: path})
		if err != nil {
			t.Fatal(err)
		}
		oc := oidc.New(oidc.Options{Issuer: srv.URL, ClientID: name, ClientSecret: name + "-secret", HTTPClient: srv.Client()})
		if err := oc.Discover(context.Background()); err != nil {
			t.Fatal(err)
		}
		src := tokens.New(tokens.Options{Sessions: m, OIDC: oc, Locker: store})
		h := bff.New(bff.Options{Sessions: m, OIDC: oc, Tokens: src, Locker: store, Replay: store, Logger: slog.New(slog.DiscardHandler)})
		mux := http.NewServeMux()
		h.Register(mux, nil)
		fs[name] = &frontend{sessions: m, mux: mux}
	}
	return p, fs
}

// login stores a session for f as its callback would.
func (f *frontend) login(t *testing.T, sub, sid string) *session.Session {
	t.Helper()
	s := &session.Session{Subject: sub, IdPSessionID: sid, LogoutID: "l", AccessToken: "at"}
	if err := f.sessions.Create(context.Background(), httptest.NewRecorder(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *frontend) live(t *testing.T, s *session.Session) bool {
	t.Helper()
	_, err := f.sessions.Get(context.Background(), s.ID)
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func (f *frontend) backchannel(t *testing.T, token string) int {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, bff.BackchannelPath, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w.Code
}

// Back-channel logout for one client ends only its frontend's sessions,
// though the other frontend, over the same store, has sessions of the
// same subject with the same provider sid.
func TestBackchannelScopedToFrontend(t *testing.T) {
	p, fs := twoFrontends(t)
	shop, admin := fs["shop"], fs["admin"]
	shopSame, adminSame := shop.login(t, "alice", "idp-sid"), admin.login(t, "alice", "idp-sid")
	shopOther, adminOther := shop.login(t, "alice", "idp-sid-2"), admin.login(t, "alice", "idp-sid-2")
	sign := func(client, sub, sid string) string {
		tok, err := p.SignLogoutToken(client, sub, sid)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	type want struct{ shopSame, adminSame, shopOther, adminOther bool }
	check := func(step string, w want) {
		t.Helper()
		for _, c := range []struct {
			what      string
			f         *frontend
			s         *session.Session
			wantAlive bool
		}{
			{"shop's session of idp-sid", shop, shopSame, w.shopSame},
			{"admin's session of idp-sid", admin, adminSame, w.adminSame},
			{"shop's session of idp-sid-2", shop, shopOther, w.shopOther},
			{"admin's session of idp-sid-2", admin, adminOther, w.adminOther},
		} {
			if got := c.f.live(t, c.s); got != c.wantAlive {
				t.Errorf("%s: %s live %v, want %v", step, c.what, got, c.wantAlive)
			}
		}
	}

	// A token for admin sent to shop's endpoint is refused and ends nothing.
	if code := shop.backchannel(t, sign("admin", "alice", "idp-sid")); code != http.StatusBadRequest {
		t.Errorf("admin's token at shop's endpoint: got %d, want 400", code)
	}
	check("after admin's token at shop", want{true, true, true, true})

	// By sid (and sub) for shop: shop's session of that sid ends; admin's,
	// same sub and same provider sid, lives.
	if code := shop.backchannel(t, sign("shop", "alice", "idp-sid")); code != http.StatusOK {
		t.Fatalf("shop's logout by sid: got %d, want 200", code)
	}
	check("after shop's logout by sid", want{false, true, true, true})

	// By subject for admin: every admin session of alice ends; shop's lives.
	if code := admin.backchannel(t, sign("admin", "alice", "")); code != http.StatusOK {
		t.Fatalf("admin's logout by sub: got %d, want 200", code)
	}
	check("after admin's logout by sub", want{false, false, true, false})

	// Front-channel logout is scoped the same way.
	r := httptest.NewRequest(http.MethodGet, bff.FrontchannelPath+"?sid=idp-sid-2", nil)
	w := httptest.NewRecorder()
	admin.mux.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("admin's front-channel logout: got %d, want 200", w.Code)
	}
	check("after admin's front-channel logout", want{false, false, true, false})
}

// A logout token is accepted once per frontend.
func TestBackchannelReplayRefused(t *testing.T) {
	p, fs := twoFrontends(t)
	shop := fs["shop"]
	tok, err := p.SignLogoutToken("shop", "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{http.StatusOK, http.StatusBadRequest} {
		if code := shop.backchannel(t, tok); code != want {
			t.Errorf("delivery %d: got %d, want %d", i+1, code, want)
		}
	}
}
