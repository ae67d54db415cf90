package session

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http/httptest"
	"testing"
)

// The seal itself is bound to the frontend, not only the store key or a
// field inside: at one handle (an operator's lookup) and under one cookie
// name, another frontend's AEAD refuses the value before anything is
// decoded.
func TestSealAADBindsFrontend(t *testing.T) {
	keys := [][]byte{bytes.Repeat([]byte{9}, 32)}
	store := &mapStore{m: map[string][]byte{}}
	mgr := func(frontend string, cookieMode bool) *Manager {
		o := Options{Store: store, Keys: keys, Frontend: frontend, CookieMode: cookieMode, CookieName: "__Host-Http-same"}
		if cookieMode {
			o.Store = nil
		}
		m, err := NewManager(o)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	shop, admin, implicit := mgr("shop", false), mgr("admin", false), mgr("", false)
	s := &Session{Subject: "alice"}
	if err := shop.Create(context.Background(), httptest.NewRecorder(), s); err != nil {
		t.Fatal(err)
	}
	handle := shop.HandleOf(s.ID)
	blob := store.m[handle]
	plain, err := shop.seal.open(0, blob, shop.aad(handle))
	if err != nil {
		t.Fatalf("shop opening its own session: %v", err)
	}
	if got, frontend, err := decodeRecord(plain); err != nil || frontend != "shop" || got.Subject != "alice" {
		t.Errorf("shop's sealed record: got frontend %q, subject %q, %v; want it to name its frontend", frontend, got.Subject, err)
	}
	// The implicit frontend's record names no frontend.
	if err := implicit.Create(context.Background(), httptest.NewRecorder(), &Session{Subject: "bob"}); err != nil {
		t.Fatal(err)
	}
	opened := 0
	for k, v := range store.m {
		p, err := implicit.seal.open(0, v, implicit.aad(k))
		if err != nil {
			continue
		}
		opened++
		if got, frontend, err := decodeRecord(p); err != nil || frontend != "" || got.Subject != "bob" {
			t.Errorf("implicit frontend's sealed record: got frontend %q, %v; want none", frontend, err)
		}
	}
	if opened != 1 {
		t.Errorf("the implicit frontend opened %d records, want its one", opened)
	}
	for _, m := range []*Manager{admin, implicit} {
		if _, err := m.seal.open(0, blob, m.aad(handle)); err == nil {
			t.Errorf("frontend %q's AEAD opened shop's session at shop's handle", m.frontend)
		}
	}

	cshop, cadmin, cimplicit := mgr("shop", true), mgr("admin", true), mgr("", true)
	s.ID = newID()
	enc, err := cshop.encodeCookie(s)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cshop.seal.openAny(sealed, cshop.aad(cshop.cookie)); err != nil {
		t.Fatalf("shop opening its own cookie: %v", err)
	}
	for _, m := range []*Manager{cadmin, cimplicit} {
		if m.cookie != cshop.cookie {
			t.Fatalf("cookie names differ: %q, %q", m.cookie, cshop.cookie)
		}
		if _, err := m.seal.openAny(sealed, m.aad(m.cookie)); err == nil {
			t.Errorf("frontend %q's AEAD opened shop's cookie under the same cookie name", m.frontend)
		}
	}
}
