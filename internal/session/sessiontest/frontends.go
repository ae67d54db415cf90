package sessiontest

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/session"
)

//go:embed testdata/legacy-session.json
var legacyJSON []byte

// Legacy is a session as a release before frontends existed stored it,
// with the values it derived: testdata/legacy-session.json, written by
// that release's Manager (store mode and cookie mode) and never
// regenerated. Every store and key derivation of the implicit frontend
// must keep loading it.
type Legacy struct {
	// Key is the session key it was sealed under (a test key).
	Key []byte    `json:"key"`
	Now time.Time `json:"now"` // when it was created
	// Ticket is the cookie's value; StoreKey the handle it was stored at,
	// with Tags (subject "alice", then IdP sid "idp-sid-1").
	Ticket   string   `json:"ticket"`
	StoreKey string   `json:"store_key"`
	Tags     []string `json:"tags"`
	Sealed   []byte   `json:"sealed"`
	LockKey  string   `json:"lock_key"`
	SubTag   string   `json:"sub_tag"`
	SIDTag   string   `json:"sid_tag"`
	// CookieMode holds the cookie-mode Set-Cookie name=value pairs of the
	// same session.
	CookieMode []string `json:"cookie_mode"`
}

// LegacySession returns the stored legacy session fixture.
func LegacySession(t testing.TB) Legacy {
	t.Helper()
	var l Legacy
	if err := json.Unmarshal(legacyJSON, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// frontends checks, through Managers over the store under test, that a
// session belongs to one frontend: Managers of other frontends (and of the
// implicit one) sharing the store and the keys never find it, by ticket,
// handle, tag or a sealed value copied to their key; tags and replay
// memory are per frontend; and a session stored before frontends existed
// still loads through the implicit frontend.
func frontends(t *testing.T, o Options) {
	ctx := context.Background()
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	newStore := func(t *testing.T, clk *Clock) session.Store {
		s := o.New(t, clk)
		t.Cleanup(func() { s.Close() })
		return s
	}
	manager := func(t *testing.T, st session.Store, now func() time.Time, keys [][]byte, frontend string) *session.Manager {
		t.Helper()
		m, err := session.NewManager(session.Options{Store: st, Keys: keys, Frontend: frontend, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	t.Run("frontends are isolated", func(t *testing.T) {
		clk := NewClock()
		st := newStore(t, clk)
		names := []string{"shop", "admin", ""} // "" is the implicit frontend
		ms := map[string]*session.Manager{}
		ss := map[string]*session.Session{}
		for _, n := range names {
			ms[n] = manager(t, st, clk.Now, keys, n)
			// The same subject and the same provider sid everywhere.
			ss[n] = &session.Session{Subject: "alice", IdPSessionID: "idp-sid", LogoutID: "l-" + n, AccessToken: "at-" + n}
			must(t, ms[n].Create(ctx, httptest.NewRecorder(), ss[n]))
		}
		for _, n := range names {
			m, s := ms[n], ss[n]
			got, err := m.Get(ctx, s.ID)
			if err != nil || got.AccessToken != "at-"+n {
				t.Fatalf("frontend %q loading its own session: got %+v, %v", n, got, err)
			}
			for _, other := range names {
				if other == n {
					continue
				}
				om := ms[other]
				if _, err := om.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
					t.Errorf("frontend %q got frontend %q's session by ticket: %v, want ErrNotFound", other, n, err)
				}
				if _, err := om.ByHandle(ctx, got.Handle); !errors.Is(err, session.ErrNotFound) {
					t.Errorf("frontend %q got frontend %q's session by handle: %v, want ErrNotFound", other, n, err)
				}
				if om.HandleOf(s.ID) == m.HandleOf(s.ID) || om.SubjectTag("alice") == m.SubjectTag("alice") ||
					om.SIDTag("idp-sid") == m.SIDTag("idp-sid") || om.LockKey(s.ID) == m.LockKey(s.ID) {
					t.Errorf("frontends %q and %q share a key or a tag", n, other)
				}
			}
			for what, find := range map[string]func(context.Context, string) ([]*session.Session, error){
				"BySubject": func(ctx context.Context, _ string) ([]*session.Session, error) { return m.BySubject(ctx, "alice") },
				"BySID":     func(ctx context.Context, _ string) ([]*session.Session, error) { return m.BySID(ctx, "idp-sid") },
			} {
				list, err := find(ctx, "")
				if err != nil || len(list) != 1 || list[0].Handle != got.Handle {
					t.Errorf("frontend %q %s: got %d sessions (%v), want only its own", n, what, len(list), err)
				}
			}
		}

		// A sealed session copied to the key another frontend derives for
		// the same ticket fails to open there: the seal is bound to the
		// frontend, not only the key.
		shop, admin := ms["shop"], ms["admin"]
		blob, err := st.Get(ctx, shop.HandleOf(ss["shop"].ID))
		must(t, err)
		for _, other := range []string{"admin", ""} {
			must(t, st.Set(ctx, ms[other].HandleOf(ss["shop"].ID), blob, time.Hour))
			if _, err := ms[other].Get(ctx, ss["shop"].ID); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("frontend %q opened frontend shop's session copied to its key: %v, want ErrNotFound", other, err)
			}
		}

		// Deleting by one frontend's tag ends only that frontend's session.
		must(t, st.DeleteTagged(ctx, shop.SIDTag("idp-sid")))
		if _, err := shop.Get(ctx, ss["shop"].ID); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("shop's session after DeleteTagged(shop's sid tag): %v, want ErrNotFound", err)
		}
		for _, n := range []string{"admin", ""} {
			if _, err := ms[n].Get(ctx, ss[n].ID); err != nil {
				t.Errorf("frontend %q's session after DeleteTagged(shop's sid tag): %v, want it live", n, err)
			}
		}

		// Replay memory is per frontend.
		var locker session.Locker = &session.LocalLocker{Now: clk.Now}
		if l, ok := st.(session.Locker); ok {
			locker = l
		}
		for _, c := range []struct {
			m    *session.Manager
			want bool
		}{{shop, true}, {shop, false}, {admin, true}, {admin, false}} {
			got, err := c.m.FirstUse(ctx, locker, st, t.Name()+"jti", time.Hour)
			if err != nil || got != c.want {
				t.Errorf("FirstUse through %q: got %v, %v, want %v", c.m.Frontend(), got, err, c.want)
			}
		}
	})

	t.Run("legacy session", func(t *testing.T) {
		l := LegacySession(t)
		st := newStore(t, NewClock())
		must(t, st.Set(ctx, l.StoreKey, l.Sealed, time.Hour, l.Tags...))
		now := func() time.Time { return l.Now.Add(time.Minute) }
		m := manager(t, st, now, [][]byte{l.Key}, "")
		for what, c := range map[string][2]string{
			"HandleOf":   {m.HandleOf(l.Ticket), l.StoreKey},
			"LockKey":    {m.LockKey(l.Ticket), l.LockKey},
			"SubjectTag": {m.SubjectTag("alice"), l.SubTag},
			"SIDTag":     {m.SIDTag("idp-sid-1"), l.SIDTag},
		} {
			if c[0] != c[1] {
				t.Errorf("%s: got %q, want %q as before frontends", what, c[0], c[1])
			}
		}
		if !slices.Equal(l.Tags, []string{l.SubTag, l.SIDTag}) {
			t.Fatalf("fixture tags %v", l.Tags)
		}
		s, err := m.Get(ctx, l.Ticket)
		if err != nil {
			t.Fatalf("legacy session: %v, want it loaded", err)
		}
		if s.Subject != "alice" || s.AccessToken != "at-1" || s.RefreshToken != "rt-1" || s.Handle != l.StoreKey {
			t.Errorf("legacy session loaded as %+v", s)
		}
		for what, find := range map[string]func() ([]*session.Session, error){
			"BySubject": func() ([]*session.Session, error) { return m.BySubject(ctx, "alice") },
			"BySID":     func() ([]*session.Session, error) { return m.BySID(ctx, "idp-sid-1") },
		} {
			if list, err := find(); err != nil || len(list) != 1 || list[0].Handle != l.StoreKey {
				t.Errorf("legacy %s: got %d sessions, %v; want the fixture", what, len(list), err)
			}
		}
		// A named frontend with the same keys sees none of it.
		shop := manager(t, st, now, [][]byte{l.Key}, "shop")
		if _, err := shop.Get(ctx, l.Ticket); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("frontend shop got the legacy session by ticket: %v", err)
		}
		if _, err := shop.ByHandle(ctx, l.StoreKey); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("frontend shop got the legacy session by handle: %v", err)
		}
		if list, err := shop.BySubject(ctx, "alice"); err != nil || len(list) != 0 {
			t.Errorf("frontend shop BySubject: got %d sessions, %v; want none", len(list), err)
		}
		// Saved again, it stays where it was, and loads.
		s.LastSeen = now()
		must(t, m.Save(ctx, s))
		if again, err := m.Get(ctx, l.Ticket); err != nil || again.Handle != l.StoreKey {
			t.Errorf("legacy session after Save: %v", err)
		}
	})
}
