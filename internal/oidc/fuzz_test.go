package oidc_test

import (
	"testing"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/hostile"
)

// FuzzVerifyLogoutToken feeds mutated logout tokens to the verifier: it
// must never panic, and it must accept nothing but the one genuine token
// (byte for byte) from the seeds.
func FuzzVerifyLogoutToken(f *testing.F) {
	p := hostile.New(f)
	good := p.Mint(f, hostile.Token{Claims: p.LogoutClaims(), Header: map[string]any{"typ": "logout+jwt"}})
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("not-a-jwt")
	f.Add("a.b.c.d.e")
	f.Add("")
	// One discovered client for the whole run; its JWKS is fetched once.
	c := oidc.New(options(p))
	if err := c.Discover(f.Context()); err != nil {
		f.Fatal(err)
	}
	want, err := c.VerifyLogoutToken(f.Context(), good)
	if err != nil {
		f.Fatalf("the genuine token does not verify: %v", err)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		// (A token may differ from the genuine one only in base64 bits
		// that decode to the same bytes; what it says must be the same.)
		lt, err := c.VerifyLogoutToken(t.Context(), tok)
		if err == nil && *lt != *want {
			t.Fatalf("accepted a token that says something else: %+v", lt)
		}
	})
}
