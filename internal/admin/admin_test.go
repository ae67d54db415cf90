package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/admin"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/memstore"
	"github.com/cloakroom/cloakroom/internal/tokens"
)

const token = "admin-token-for-tests"

var keys = [][]byte{[]byte("0123456789abcdef0123456789abcdef")}

func manager(t *testing.T, store session.Store, frontend string) *session.Manager {
	t.Helper()
	m, err := session.NewManager(session.Options{Store: store, Keys: keys, Frontend: frontend})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func login(t *testing.T, m *session.Manager, sub string) *session.Session {
	t.Helper()
	s := &session.Session{Subject: sub, IdPSessionID: "idp-sid", LogoutID: "l"}
	if err := m.Create(context.Background(), httptest.NewRecorder(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

func call(t *testing.T, h http.Handler, method, target string) (int, []byte) {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.Bytes()
}

func listed(t *testing.T, body []byte) []admin.Info {
	t.Helper()
	var out []admin.Info
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("list answer %q: %v", body, err)
	}
	return out
}

// frontendsOf is the frontend of each listed session, sorted.
func frontendsOf(list []admin.Info) []string {
	var out []string
	for _, i := range list {
		out = append(out, i.Frontend)
	}
	slices.Sort(out)
	return out
}

// Several frontends over one store: every listing names each session's
// frontend, ?frontend= narrows to one, and revocation reaches only the
// frontends asked for.
func TestSessionsPerFrontend(t *testing.T) {
	store := memstore.New(nil)
	shop, adm := manager(t, store, "shop"), manager(t, store, "admin")
	h := admin.New(admin.Options{Token: token, Frontends: []admin.Frontend{
		{Sessions: shop, Tokens: tokens.New(tokens.Options{Sessions: shop})},
		{Sessions: adm, Tokens: tokens.New(tokens.Options{Sessions: adm})},
	}})
	shop1, shop2, admin1 := login(t, shop, "alice"), login(t, shop, "alice"), login(t, adm, "alice")

	code, body := call(t, h, http.MethodGet, "/admin/sessions?sub=alice")
	if code != http.StatusOK {
		t.Fatalf("list: got %d %s", code, body)
	}
	if got := frontendsOf(listed(t, body)); !slices.Equal(got, []string{"admin", "shop", "shop"}) {
		t.Errorf("list: got frontends %v, want admin, shop, shop", got)
	}
	for _, c := range []struct {
		frontend string
		want     []string
	}{{"shop", []string{"shop", "shop"}}, {"admin", []string{"admin"}}} {
		code, body := call(t, h, http.MethodGet, "/admin/sessions?sub=alice&frontend="+c.frontend)
		if got := frontendsOf(listed(t, body)); code != http.StatusOK || !slices.Equal(got, c.want) {
			t.Errorf("list of %s: got %d %v, want 200 %v", c.frontend, code, got, c.want)
		}
	}
	for _, target := range []string{
		"/admin/sessions?sub=alice&frontend=nope",
		"/admin/sessions?sub=alice&frontend=",
	} {
		if code, _ := call(t, h, http.MethodGet, target); code != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", target, code)
		}
	}

	// One handle, asked of the wrong frontend: not found; of its own or
	// of all: ended.
	handle := shop.HandleOf(shop1.ID)
	if code, _ := call(t, h, http.MethodDelete, "/admin/sessions/"+handle+"?frontend=admin"); code != http.StatusNotFound {
		t.Errorf("shop's handle revoked through frontend admin: got %d, want 404", code)
	}
	if code, body := call(t, h, http.MethodDelete, "/admin/sessions/"+handle); code != http.StatusOK || !strings.Contains(string(body), `"revoked":1`) {
		t.Errorf("shop's handle: got %d %s, want 200 and one revoked", code, body)
	}
	alive := func(m *session.Manager, s *session.Session) bool {
		_, err := m.Get(context.Background(), s.ID)
		if err != nil && !errors.Is(err, session.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	if alive(shop, shop1) || !alive(shop, shop2) || !alive(adm, admin1) {
		t.Errorf("after revoking one handle: shop1 %v shop2 %v admin1 %v, want false true true", alive(shop, shop1), alive(shop, shop2), alive(adm, admin1))
	}

	// A subject, in one frontend only.
	if code, body := call(t, h, http.MethodDelete, "/admin/sessions?sub=alice&frontend=admin"); code != http.StatusOK || !strings.Contains(string(body), `"revoked":1`) {
		t.Errorf("admin's sessions of alice: got %d %s, want 200 and one revoked", code, body)
	}
	if !alive(shop, shop2) || alive(adm, admin1) {
		t.Errorf("after revoking admin's alice: shop2 %v admin1 %v, want true false", alive(shop, shop2), alive(adm, admin1))
	}
}

// One frontend, configured as before frontends existed: the answer has
// no frontend member.
func TestSessionsSingleFrontend(t *testing.T) {
	store := memstore.New(nil)
	m := manager(t, store, "")
	h := admin.New(admin.Options{Token: token, Sessions: m, Tokens: tokens.New(tokens.Options{Sessions: m})})
	login(t, m, "alice")
	code, body := call(t, h, http.MethodGet, "/admin/sessions?sub=alice")
	if code != http.StatusOK || len(listed(t, body)) != 1 || strings.Contains(string(body), "frontend") {
		t.Errorf("list: got %d %s, want one session and no frontend member", code, body)
	}
	if code, _ := call(t, h, http.MethodGet, "/admin/sessions?sub=alice&frontend=shop"); code != http.StatusNotFound {
		t.Errorf("list of an unknown frontend: got %d, want 404", code)
	}
}
