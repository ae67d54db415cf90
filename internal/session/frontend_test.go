package session_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/memstore"
	"github.com/cloakroom/cloakroom/internal/session/sessiontest"
)

func frontendManager(t *testing.T, o session.Options) *session.Manager {
	t.Helper()
	if o.Keys == nil {
		o.Keys = [][]byte{keyA}
	}
	m, err := session.NewManager(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// cookieMode runs fn inside m's middleware and returns the response's
// cookies.
func cookieMode(t *testing.T, m *session.Manager, req *http.Request, fn func(w http.ResponseWriter, r *http.Request)) []*http.Cookie {
	t.Helper()
	if req == nil {
		req = httptest.NewRequest(http.MethodGet, "/", nil)
	}
	rec := httptest.NewRecorder()
	m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fn(w, r)
		w.WriteHeader(http.StatusNoContent)
	})).ServeHTTP(rec, req)
	return rec.Result().Cookies()
}

// The session cookie's name and attributes per frontend: the implicit
// frontend's as before, __Host- at path /, __Secure- with the frontend's
// Path elsewhere; set and cleared with the same Path, in both modes.
func TestFrontendCookieAttributes(t *testing.T) {
	for _, c := range []struct {
		name           string
		frontend, path string
		cookie         string // configured
		wantName       string
		wantPath       string
	}{
		{"implicit", "", "", "", "__Host-Http-cloakroom", "/"},
		{"root", "shop", "/", "", "__Host-Http-cloakroom-shop", "/"},
		{"root by default", "shop", "", "", "__Host-Http-cloakroom-shop", "/"},
		{"path", "admin", "/admin/", "", "__Secure-Http-cloakroom-admin", "/admin/"},
		{"path, configured name", "admin", "/admin/", "__Secure-admin-session", "__Secure-admin-session", "/admin/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			m := frontendManager(t, session.Options{Store: memstore.New(clk.Now), Frontend: c.frontend, CookiePath: c.path, CookieName: c.cookie, Now: clk.Now})
			if m.CookieName() != c.wantName || m.CookiePath() != c.wantPath || m.Frontend() != c.frontend {
				t.Fatalf("got name %q, path %q, frontend %q; want %q, %q, %q", m.CookieName(), m.CookiePath(), m.Frontend(), c.wantName, c.wantPath, c.frontend)
			}
			check := func(what string, ck *http.Cookie, cleared bool) {
				t.Helper()
				if ck.Path != c.wantPath || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Domain != "" {
					t.Errorf("%s: got %q; want Path=%s; Secure; HttpOnly; SameSite=Strict and no Domain", what, ck.Raw, c.wantPath)
				}
				if cleared != (ck.MaxAge < 0) {
					t.Errorf("%s: got Max-Age %d, want cleared %v", what, ck.MaxAge, cleared)
				}
			}
			s, ck := create(t, m)
			if ck.Name != c.wantName || ck.Value != s.ID {
				t.Errorf("set: got cookie %q, want %s=<ticket>", ck.Raw, c.wantName)
			}
			check("set", ck, false)
			rec := httptest.NewRecorder()
			m.ClearCookie(rec)
			cl := rec.Result().Cookies()
			if len(cl) != 1 || cl[0].Name != c.wantName {
				t.Fatalf("clear: got %v", cl)
			}
			check("clear", cl[0], true)

			// Cookie mode: every chunk, set or cleared, has the Path.
			cm := frontendManager(t, session.Options{CookieMode: true, Frontend: c.frontend, CookiePath: c.path, CookieName: c.cookie, Now: clk.Now})
			set := cookieMode(t, cm, nil, func(w http.ResponseWriter, r *http.Request) {
				if err := cm.Create(r.Context(), w, &session.Session{Subject: "alice"}); err != nil {
					t.Fatal(err)
				}
			})
			if len(set) != 1 || set[0].Name != c.wantName+".0" {
				t.Fatalf("cookie mode set: got %v", set)
			}
			check("cookie mode set", set[0], false)
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.AddCookie(set[0])
			del := cookieMode(t, cm, req, func(w http.ResponseWriter, r *http.Request) {
				if err := cm.Delete(r.Context(), nil); err != nil {
					t.Fatal(err)
				}
			})
			if len(del) != 1 || del[0].Name != c.wantName+".0" {
				t.Fatalf("cookie mode delete: got %v", del)
			}
			check("cookie mode delete", del[0], true)
		})
	}
}

func TestFrontendOptionsRefused(t *testing.T) {
	for name, o := range map[string]session.Options{
		"__Host- off /":          {Frontend: "admin", CookiePath: "/admin/", CookieName: "__Host-admin"},
		"__Host-Http- off /":     {Frontend: "admin", CookiePath: "/admin/", CookieName: "__Host-Http-cloakroom"},
		"implicit __Host- off /": {CookiePath: "/admin/"},
		"upper case name":        {Frontend: "Shop"},
		"space in name":          {Frontend: "a b"},
		"NUL in name":            {Frontend: "a\x00b"},
		"relative path":          {Frontend: "admin", CookiePath: "admin/"},
		"semicolon in path":      {Frontend: "admin", CookiePath: "/a;Domain=x/"},
	} {
		t.Run(name, func(t *testing.T) {
			o.Store, o.Keys = memstore.New(nil), [][]byte{keyA}
			if _, err := session.NewManager(o); err == nil {
				t.Errorf("NewManager accepted %+v", o)
			}
		})
	}
}

// Two frontends on one origin, one at / and one at /admin/: the browser
// sends both cookies to /admin/; each frontend loads its own session,
// and a ticket moved under the other's cookie name is refused.
func TestFrontendsOnOneOrigin(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	store := memstore.New(clk.Now)
	shop := frontendManager(t, session.Options{Store: store, Frontend: "shop", Now: clk.Now})
	admin := frontendManager(t, session.Options{Store: store, Frontend: "admin", CookiePath: "/admin/", Now: clk.Now})
	sShop, cShop := create(t, shop)
	sAdmin, cAdmin := create(t, admin)

	both := httptest.NewRequest(http.MethodGet, "/admin/bff/user", nil)
	both.AddCookie(cShop)
	both.AddCookie(cAdmin)
	for _, c := range []struct {
		m    *session.Manager
		want *session.Session
	}{{shop, sShop}, {admin, sAdmin}} {
		got, err := c.m.Load(both)
		if err != nil || got.ID != c.want.ID {
			t.Errorf("frontend %q with both cookies: got %v, %v; want its own session", c.m.Frontend(), got, err)
		}
	}
	for _, c := range []struct {
		m      *session.Manager
		ticket string
	}{{shop, sAdmin.ID}, {admin, sShop.ID}} {
		r := request(&http.Cookie{Name: c.m.CookieName(), Value: c.ticket})
		if _, err := c.m.Load(r); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("frontend %q with the other's ticket under its cookie name: got %v, want ErrNotFound", c.m.Frontend(), err)
		}
	}
}

// In cookie mode the session travels sealed in the browser: chunks of one
// frontend presented under another's cookie name, or to another frontend
// that has the same cookie name (on another host), do not open.
func TestCookieModeTransplant(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	shop := frontendManager(t, session.Options{CookieMode: true, Frontend: "shop", Now: clk.Now})
	admin := frontendManager(t, session.Options{CookieMode: true, Frontend: "admin", CookiePath: "/admin/", Now: clk.Now})
	twin := frontendManager(t, session.Options{CookieMode: true, Frontend: "twin", CookieName: shop.CookieName(), Now: clk.Now})
	implicit := frontendManager(t, session.Options{CookieMode: true, CookieName: shop.CookieName(), Now: clk.Now})
	set := cookieMode(t, shop, nil, func(w http.ResponseWriter, r *http.Request) {
		if err := shop.Create(r.Context(), w, &session.Session{Subject: "alice", AccessToken: "at"}); err != nil {
			t.Fatal(err)
		}
	})
	under := func(name string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/admin/", nil)
		for _, c := range set {
			r.AddCookie(&http.Cookie{Name: name + strings.TrimPrefix(c.Name, shop.CookieName()), Value: c.Value})
		}
		return r
	}
	if s, err := shop.Load(under(shop.CookieName())); err != nil || s.Subject != "alice" {
		t.Fatalf("shop's own cookie: got %v, %v", s, err)
	}
	for _, m := range []*session.Manager{admin, twin, implicit} {
		if _, err := m.Load(under(m.CookieName())); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("frontend %q given shop's cookie as %s: got %v, want ErrNotFound", m.Frontend(), m.CookieName(), err)
		}
	}
}

// Cookie-mode sessions written before frontends existed keep loading
// through the implicit frontend, and no named frontend opens them.
func TestCookieModeLegacy(t *testing.T) {
	l := sessiontest.LegacySession(t)
	now := func() time.Time { return l.Now.Add(time.Minute) }
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range l.CookieMode {
		req.Header.Add("Cookie", c)
	}
	m := frontendManager(t, session.Options{CookieMode: true, Keys: [][]byte{l.Key}, Now: now})
	s, err := m.Load(req)
	if err != nil || s.Subject != "alice" || s.AccessToken != "at-1" {
		t.Fatalf("legacy cookie-mode session: got %+v, %v", s, err)
	}
	named := frontendManager(t, session.Options{CookieMode: true, Keys: [][]byte{l.Key}, Frontend: "shop", CookieName: session.DefaultCookieName, Now: now})
	if _, err := named.Load(req); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("frontend shop opened the legacy cookie-mode session: %v", err)
	}
}

// What one frontend seals for the browser (the login attempt), another
// cannot open.
func TestSealBoundToFrontend(t *testing.T) {
	shop := frontendManager(t, session.Options{Store: memstore.New(nil), Frontend: "shop"})
	admin := frontendManager(t, session.Options{Store: memstore.New(nil), Frontend: "admin"})
	implicit := frontendManager(t, session.Options{Store: memstore.New(nil)})
	sealed := shop.Seal("login:x", []byte("attempt"))
	if got, err := shop.Open("login:x", sealed); err != nil || string(got) != "attempt" {
		t.Fatalf("shop opening its own: %q, %v", got, err)
	}
	for _, m := range []*session.Manager{admin, implicit} {
		if _, err := m.Open("login:x", sealed); err == nil {
			t.Errorf("frontend %q opened shop's sealed value", m.Frontend())
		}
	}
	if _, err := implicit.Open("login:x", implicit.Seal("login:x", []byte("a"))); err != nil {
		t.Errorf("implicit frontend: %v", err)
	}
}
