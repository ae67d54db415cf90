package oidc_test

import (
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/hostile"
)

// TestWithCredentials: a client made by WithCredentials authenticates with
// its own credentials, shares the main client's one discovery and JWKS,
// and signs no user in.
func TestWithCredentials(t *testing.T) {
	p := hostile.New(t)
	type seen struct{ user, pass, grant, formID, formSecret string }
	var (
		mu  sync.Mutex
		got []seen
	)
	p.Token = func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, seen{user, pass, r.PostForm.Get("grant_type"), r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")})
		hostile.Status(http.StatusOK, p.TokenResponse(""))(w, r)
	}
	main := oidc.New(options(p))
	basic := main.WithCredentials(oidc.Credentials{ClientID: "api caller", ClientSecret: "service secret:1"})
	post := main.WithCredentials(oidc.Credentials{ClientID: "api-poster", ClientSecret: "poster-secret", ClientAuth: "client_secret_post"})

	if basic.Ready() {
		t.Fatal("service client ready before the main client discovered")
	}
	if _, err := basic.ClientCredentials(t.Context(), oidc.TokenParams{}); !errors.Is(err, oidc.ErrNotReady) {
		t.Fatalf("client credentials before discovery: %v, want ErrNotReady", err)
	}
	if err := basic.Discover(t.Context()); err != nil {
		t.Fatalf("discover through the service client: %v", err)
	}
	if !main.Ready() || !post.Ready() {
		t.Fatal("the service client's Discover did not discover for the main client")
	}

	if _, err := basic.ClientCredentials(t.Context(), oidc.TokenParams{Scopes: []string{"orders.read"}}); err != nil {
		t.Fatalf("client credentials (basic): %v", err)
	}
	if _, err := post.ExchangeToken(t.Context(), "user-token", oidc.TokenParams{Audience: "inventory"}); err != nil {
		t.Fatalf("token exchange (post): %v", err)
	}
	if _, err := main.ClientCredentials(t.Context(), oidc.TokenParams{}); err != nil {
		t.Fatalf("client credentials (main): %v", err)
	}
	mu.Lock()
	seenSoFar := slices.Clone(got)
	mu.Unlock()
	want := []seen{
		{user: "api+caller", pass: "service+secret%3A1", grant: "client_credentials"}, // RFC 6749 §2.3.1 form-encodes both
		{grant: oidc.GrantTokenExchange, formID: "api-poster", formSecret: "poster-secret"},
		{user: p.ClientID, pass: p.ClientSecret, grant: "client_credentials"},
	}
	if len(seenSoFar) != len(want) {
		t.Fatalf("token requests %+v, want %+v", seenSoFar, want)
	}
	for i := range want {
		if seenSoFar[i] != want[i] {
			t.Errorf("token request %d: %+v, want %+v", i, seenSoFar[i], want[i])
		}
	}
	if n := p.Hits(hostile.PathDiscovery); n != 1 {
		t.Errorf("discovery fetched %d times, want once for both clients", n)
	}

	for name, call := range map[string]func() error{
		"AuthCodeURL": func() error {
			_, err := post.AuthCodeURL(t.Context(), oidc.AuthRequest{State: "s", Nonce: "n", Verifier: "v"})
			return err
		},
		"Exchange": func() error {
			_, err := post.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce)
			return err
		},
		"Refresh": func() error {
			_, err := post.Refresh(t.Context(), "rt", hostile.DefaultSubject, oidc.TokenParams{})
			return err
		},
	} {
		before := p.TokenRequests()
		if err := call(); err == nil {
			t.Errorf("%s of a service client succeeded", name)
		}
		if p.TokenRequests() != before {
			t.Errorf("%s of a service client reached the token endpoint", name)
		}
	}
}
