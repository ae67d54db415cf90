package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The allocation-free ticket reader must pick the same cookie as
// http.Request.Cookie for every header shape a browser or an attacker can
// send, and refuse what is not a ticket.
func TestTicketMatchesRequestCookie(t *testing.T) {
	m := &Manager{cookie: "__Host-Http-cloakroom"}
	good := strings.Repeat("A", 42) + "_"
	other := strings.Repeat("b", 42) + "-"
	cases := []struct {
		name    string
		headers []string
		want    string
	}{
		{"only", []string{"__Host-Http-cloakroom=" + good}, good},
		{"among others", []string{"a=1; __Host-Http-cloakroom=" + good + "; b=2"}, good},
		{"no space", []string{"a=1;__Host-Http-cloakroom=" + good}, good},
		{"first of two", []string{"__Host-Http-cloakroom=" + good + "; __Host-Http-cloakroom=" + other}, good},
		{"second header line", []string{"a=1", "__Host-Http-cloakroom=" + other}, other},
		{"prefix of another name", []string{"__Host-Http-cloakroom.0=" + good}, ""},
		{"longer name", []string{"x__Host-Http-cloakroom=" + good}, ""},
		{"absent", []string{"a=1"}, ""},
		{"no header", nil, ""},
		{"too short", []string{"__Host-Http-cloakroom=" + good[1:]}, ""},
		{"too long", []string{"__Host-Http-cloakroom=" + good + "A"}, ""},
		{"not base64url", []string{"__Host-Http-cloakroom=" + good[1:] + "+"}, ""},
		{"quoted", []string{`__Host-Http-cloakroom="` + good[2:] + `"`}, ""},
		{"empty", []string{"__Host-Http-cloakroom="}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "https://app.example/", nil)
			for _, h := range c.headers {
				r.Header.Add("Cookie", h)
			}
			if got := m.Ticket(r); got != c.want {
				t.Fatalf("Ticket = %q, want %q", got, c.want)
			}
			// Where net/http finds a valid ticket, so must we.
			if ck, err := r.Cookie(m.cookie); err == nil && validID(ck.Value) && ck.Value != c.want {
				t.Fatalf("http.Request.Cookie finds %q, Ticket %q", ck.Value, c.want)
			}
		})
	}
}

func TestTicketDoesNotAllocate(t *testing.T) {
	m := &Manager{cookie: "__Host-Http-cloakroom"}
	r, _ := http.NewRequest(http.MethodGet, "https://app.example/", nil)
	r.Header.Set("Cookie", "theme=dark; __Host-Http-cloakroom="+strings.Repeat("Q", 43)+"; lang=en")
	if n := testing.AllocsPerRun(100, func() { m.Ticket(r) }); n != 0 {
		t.Fatalf("Ticket allocates %v times per call", n)
	}
}

// Store keys must not change with how they are computed: sessions already
// in a file or Redis store are found by them.
func TestLookupIsKeyedHMAC(t *testing.T) {
	s, err := newSealer([][]byte{[]byte(strings.Repeat("k", 32)), []byte(strings.Repeat("o", 32))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range s.keys {
		for _, v := range []string{"", "ticket", strings.Repeat("x", 300)} {
			for _, fe := range []struct{ name, input string }{
				{"", "s:\x00" + v},             // the implicit frontend: as before frontends
				{"shop", "s:\x01shop\x00" + v}, // a named frontend
			} {
				m := hmac.New(sha256.New, s.keys[i].mac)
				m.Write([]byte(fe.input))
				want := "s:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
				for range 3 { // pooled states must come back clean
					if got := s.lookup(i, "s:", fe.name, v); got != want {
						t.Fatalf("key %d, frontend %q, %q: lookup %q, want %q", i, fe.name, v, got, want)
					}
				}
			}
		}
	}
}

// No two scopes share a key: not two frontends, and not a frontend and
// the implicit one, whatever the looked-up value holds.
func TestLookupScopesDiffer(t *testing.T) {
	s, err := newSealer([][]byte{[]byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, fe := range []string{"", "a", "ab", "shop", "admin"} {
		for _, v := range []string{"", "x", "b\x00x", "\x01a\x00x", "shop", "alice"} {
			got := s.lookup(0, "sub:", fe, v)
			what := fmt.Sprintf("frontend %q, value %q", fe, v)
			if prev, ok := seen[got]; ok {
				t.Fatalf("%s and %s share key %q", prev, what, got)
			}
			seen[got] = what
		}
	}
}
