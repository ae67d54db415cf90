package session_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/memstore"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// dumpStore records every value written, to look at what a store holds.
type dumpStore struct {
	*memstore.Store
	mu   sync.Mutex
	keys []string
	vals [][]byte
}

func (d *dumpStore) Set(ctx context.Context, key string, v []byte, ttl time.Duration, tags ...string) error {
	d.mu.Lock()
	d.keys = append(d.keys, append([]string{key}, tags...)...)
	d.vals = append(d.vals, v)
	d.mu.Unlock()
	return d.Store.Set(ctx, key, v, ttl, tags...)
}

var (
	keyA = bytes.Repeat([]byte("a"), 32)
	keyB = bytes.Repeat([]byte("b"), 32)
)

func newManager(t *testing.T, store session.Store, clk *fakeClock, keys ...[]byte) *session.Manager {
	t.Helper()
	m, err := session.NewManager(session.Options{Store: store, Keys: keys, Now: clk.Now, IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 12 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func create(t *testing.T, m *session.Manager) (*session.Session, *http.Cookie) {
	t.Helper()
	s := &session.Session{Subject: "alice", IdPSessionID: "idp-sid", AccessToken: "AT-secret-value", RefreshToken: "RT-secret-value", IDToken: "ID-secret-value", LogoutID: "l"}
	rec := httptest.NewRecorder()
	if err := m.Create(context.Background(), rec, s); err != nil {
		t.Fatal(err)
	}
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies %v", cs)
	}
	return s, cs[0]
}

func request(c *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

func TestCreateLoad(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	store := &dumpStore{Store: memstore.New(clk.Now)}
	m := newManager(t, store, clk, keyA)
	s, c := create(t, m)
	if c.Name != "__Host-Http-cloakroom" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("cookie %+v", c)
	}
	if c.Value != s.ID || len(c.Value) != 43 {
		t.Errorf("ticket %q", c.Value)
	}
	got, err := m.Load(request(c))
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "AT-secret-value" || got.Subject != "alice" {
		t.Errorf("loaded %+v", got)
	}
	// What the store holds reveals neither the tokens, the subject nor the ticket.
	for _, v := range store.vals {
		for _, secret := range []string{"AT-secret-value", "RT-secret-value", "ID-secret-value", "alice", "idp-sid", c.Value} {
			if bytes.Contains(v, []byte(secret)) {
				t.Errorf("store value contains %q", secret)
			}
		}
	}
	for _, k := range store.keys {
		if strings.Contains(k, c.Value) || strings.Contains(k, "alice") || strings.Contains(k, "idp-sid") {
			t.Errorf("store key or tag %q reveals the ticket, subject or sid", k)
		}
	}
}

func TestLoadRejects(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	store := memstore.New(clk.Now)
	m := newManager(t, store, clk, keyA)
	_, c := create(t, m)
	for name, ck := range map[string]*http.Cookie{
		"no cookie":    nil,
		"garbage":      {Name: c.Name, Value: "not-a-ticket"},
		"unknown":      {Name: c.Name, Value: strings.Repeat("A", 43)},
		"other name":   {Name: "cloakroom", Value: c.Value},
		"bad encoding": {Name: c.Name, Value: strings.Repeat("!", 43)},
	} {
		if _, err := m.Load(request(ck)); err != session.ErrNotFound {
			t.Errorf("%s: got %v, want ErrNotFound", name, err)
		}
	}
	// A different key cannot read the session.
	other := newManager(t, store, clk, keyB)
	if _, err := other.Load(request(c)); err != session.ErrNotFound {
		t.Errorf("other key: got %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := newManager(t, memstore.New(clk.Now), clk, keyA)
	_, c := create(t, m)
	ctx := context.Background()
	// Sliding: each use within the idle timeout keeps it alive...
	for i := range 20 {
		clk.Add(29 * time.Minute)
		s, err := m.Load(request(c))
		if err != nil {
			t.Fatalf("use %d: %v", i, err)
		}
		if err := m.Touch(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// ...but idleness ends it.
	clk.Add(31 * time.Minute)
	if _, err := m.Load(request(c)); err != session.ErrNotFound {
		t.Errorf("after idle: %v", err)
	}
	// Absolute timeout holds however active the user is.
	_, c = create(t, m)
	for i := 0; ; i++ {
		clk.Add(20 * time.Minute)
		s, err := m.Load(request(c))
		if i*20+20 >= 12*60 {
			if err != session.ErrNotFound {
				t.Errorf("past the absolute timeout: %v", err)
			}
			break
		}
		if err != nil {
			t.Fatalf("at %d min: %v", i*20+20, err)
		}
		m.Touch(ctx, s)
	}
}

func TestKeyRotation(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	store := memstore.New(clk.Now)
	old := newManager(t, store, clk, keyA)
	_, c := create(t, old)

	rotated := newManager(t, store, clk, keyB, keyA)
	if _, err := rotated.Load(request(c)); err != nil {
		t.Fatalf("old session after adding a key: %v", err)
	}
	// Loading re-sealed it under the new key: the old key alone no longer reads it,
	// the new key alone does.
	if _, err := newManager(t, store, clk, keyB).Load(request(c)); err != nil {
		t.Errorf("not re-sealed under the new key: %v", err)
	}
	if _, err := old.Load(request(c)); err != session.ErrNotFound {
		t.Errorf("old copy still present: %v", err)
	}
}

func TestDeleteAndTags(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	store := memstore.New(clk.Now)
	m := newManager(t, store, clk, keyA)
	ctx := context.Background()
	s1, c1 := create(t, m)
	_, c2 := create(t, m)
	keys, err := store.Tagged(ctx, m.SubjectTag("alice"))
	if err != nil || len(keys) != 2 {
		t.Fatalf("tagged %v %v", keys, err)
	}
	if err := m.Delete(ctx, s1); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Load(request(c1)); err != session.ErrNotFound {
		t.Errorf("deleted session loads: %v", err)
	}
	if _, err := m.Load(request(c2)); err != nil {
		t.Errorf("other session gone: %v", err)
	}
	store.DeleteTagged(ctx, m.SIDTag("idp-sid"))
	if _, err := m.Load(request(c2)); err != session.ErrNotFound {
		t.Errorf("DeleteTagged left the session: %v", err)
	}
}

func TestShortKeyRefused(t *testing.T) {
	_, err := session.NewManager(session.Options{Store: memstore.New(nil), Keys: [][]byte{[]byte("short")}})
	if err == nil || strings.Contains(err.Error(), "short") {
		t.Errorf("got %v, want a refusal that does not print the key", err)
	}
}

func FuzzTicket(f *testing.F) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m, _ := session.NewManager(session.Options{Store: memstore.New(clk.Now), Keys: [][]byte{keyA}, Now: clk.Now})
	f.Add(strings.Repeat("A", 43))
	f.Add("")
	f.Add("%00")
	f.Add(strings.Repeat("_", 43))
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", "__Host-Http-cloakroom="+v)
		if _, err := m.Load(r); err != session.ErrNotFound {
			t.Fatalf("forged ticket %q: %v", v, err)
		}
	})
}

// TestDecodedCacheSeesOtherInstances: two managers on one store (two
// gateway processes); a change through one is seen at once by the other,
// whose decoded copy is stale.
func TestDecodedCacheSeesOtherInstances(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	store := memstore.New(clk.Now)
	a := newManager(t, store, clk, keyA)
	b := newManager(t, store, clk, keyA)
	_, c := create(t, a)
	for i := range 3 {
		sa, err := a.Load(request(c))
		if err != nil {
			t.Fatal(err)
		}
		sb, err := b.Load(request(c))
		if err != nil {
			t.Fatal(err)
		}
		sb.AccessToken = fmt.Sprint("rotated-", i)
		if err := b.Save(context.Background(), sb); err != nil {
			t.Fatal(err)
		}
		if got, _ := a.Load(request(c)); got.AccessToken != sb.AccessToken {
			t.Fatalf("round %d: A sees %q, want %q (had %q)", i, got.AccessToken, sb.AccessToken, sa.AccessToken)
		}
	}
	sb, _ := b.Load(request(c))
	if err := b.Delete(context.Background(), sb); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Load(request(c)); err != session.ErrNotFound {
		t.Errorf("A still loads a session B deleted: %v", err)
	}
}
