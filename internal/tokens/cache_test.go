package tokens_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/memstore"
	"github.com/cloakroom/cloakroom/internal/tokens"
	"github.com/go-jose/go-jose/v4"
)

// grantRecord is who a token was issued to: the client ID and the
// thumbprint of the DPoP key it is bound to ("" for a bearer token).
type grantRecord struct{ client, jkt string }

// grantCounter is a provider whose token endpoint answers the
// client-credentials and token-exchange grants itself, each with a new
// token, and remembers whom it issued each token to. The demo provider
// behind it answers discovery.
type grantCounter struct {
	url string

	mu     sync.Mutex
	issued map[string]grantRecord // by token
}

func newGrantCounter(t *testing.T) *grantCounter {
	t.Helper()
	g := &grantCounter{issued: map[string]grantRecord{}}
	var p *idp.Provider
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/token" {
			p.ServeHTTP(w, r)
			return
		}
		client, _, _ := r.BasicAuth()
		jkt, err := proofJKT(r.Header.Get("DPoP"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		typ := "Bearer"
		if jkt != "" {
			typ = oidc.DPoPScheme
		}
		g.mu.Lock()
		tok := fmt.Sprintf("tok-%d", len(g.issued)+1)
		g.issued[tok] = grantRecord{client: client, jkt: jkt}
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": typ, "expires_in": 3600})
	}))
	t.Cleanup(srv.Close)
	var err error
	if p, err = idp.New(idp.Options{Issuer: srv.URL}); err != nil {
		t.Fatal(err)
	}
	g.url = srv.URL
	return g
}

// grants is how many tokens the provider issued.
func (g *grantCounter) grants() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.issued)
}

func (g *grantCounter) issuedTo(tok string) (grantRecord, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.issued[tok]
	return r, ok
}

// proofJKT is the thumbprint of the key in a DPoP proof's header; "" for
// no proof.
func proofJKT(proof string) (string, error) {
	if proof == "" {
		return "", nil
	}
	head, _, _ := strings.Cut(proof, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", err
	}
	var h struct {
		JWK jose.JSONWebKey `json:"jwk"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return "", err
	}
	sum, err := h.JWK.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// sourceSpec is one Source of a test: its provider, its service client's
// ID and its DPoP key (nil: bearer tokens).
type sourceSpec struct {
	provider *grantCounter
	client   string
	dpop     *oidc.DPoPKey
}

// TestCacheShared: two Sources sharing a Cache get one token between them
// from one client-credentials grant (or token exchange) only when the
// provider, the service client and the DPoP key are all the same; with
// any of them different each gets its own, from a grant made by its own
// client with its own key. Sources with no Cache given each have their
// own.
func TestCacheShared(t *testing.T) {
	p1, p2 := newGrantCounter(t), newGrantCounter(t)
	k1, err := oidc.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := oidc.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New(nil)
	m, err := session.NewManager(session.Options{Store: store, Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	user := &session.Session{Subject: "alice", AccessToken: "user-token", TokenType: "Bearer", AccessObtained: time.Now(), AccessExpiry: time.Now().Add(time.Hour)}
	if err := m.Create(context.Background(), rec, user); err != nil {
		t.Fatal(err)
	}
	cookie := rec.Result().Cookies()[0]

	for _, tc := range []struct {
		name   string
		a, b   sourceSpec
		shared bool
		want   int // grants for both Sources
	}{
		{"same client, bearer", sourceSpec{p1, "svc-a", nil}, sourceSpec{p1, "svc-a", nil}, true, 1},
		{"same client, same DPoP key", sourceSpec{p1, "svc-a", k1}, sourceSpec{p1, "svc-a", k1}, true, 1},
		{"other client ID", sourceSpec{p1, "svc-a", nil}, sourceSpec{p1, "svc-b", nil}, true, 2},
		{"other client ID, same DPoP key", sourceSpec{p1, "svc-a", k1}, sourceSpec{p1, "svc-b", k1}, true, 2},
		{"other DPoP key", sourceSpec{p1, "svc-a", k1}, sourceSpec{p1, "svc-a", k2}, true, 2},
		{"DPoP and bearer", sourceSpec{p1, "svc-a", k1}, sourceSpec{p1, "svc-a", nil}, true, 2},
		{"other provider", sourceSpec{p1, "svc-a", nil}, sourceSpec{p2, "svc-a", nil}, true, 2},
		{"no shared cache", sourceSpec{p1, "svc-a", nil}, sourceSpec{p1, "svc-a", nil}, false, 2},
	} {
		for _, mode := range []tokens.Mode{tokens.Client, tokens.Exchange} {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				var cache *tokens.Cache
				if tc.shared {
					cache = new(tokens.Cache)
				}
				// A new audience per subtest: no token of an earlier one
				// could be found again.
				aud := fmt.Sprintf("https://api.example/%s/%s", t.Name(), mode)
				before := p1.grants() + p2.grants()
				specs := []sourceSpec{tc.a, tc.b}
				routes := make([]*tokens.Route, len(specs))
				for i, spec := range specs {
					typ := ""
					if spec.dpop != nil {
						typ = oidc.DPoPScheme
					}
					oc := oidc.New(oidc.Options{Issuer: spec.provider.url, ClientID: spec.client, ClientSecret: spec.client + "-secret", TokenType: typ})
					if err := oc.Discover(t.Context()); err != nil {
						t.Fatal(err)
					}
					src := tokens.New(tokens.Options{Sessions: m, OIDC: oc, Locker: store, DPoP: spec.dpop, Cache: cache})
					if routes[i], err = src.Route(tokens.RouteOptions{Mode: mode, Audience: aud}); err != nil {
						t.Fatal(err)
					}
				}
				for _, i := range []int{0, 1, 0, 1} {
					spec, rt := specs[i], routes[i]
					req := httptest.NewRequest(http.MethodGet, "/api/x", nil)
					req.AddCookie(cookie)
					tok, signer, err := rt.DPoPToken(req)
					if err != nil {
						t.Fatalf("source %d: %v", i, err)
					}
					got, ok := spec.provider.issuedTo(tok)
					want := grantRecord{client: spec.client}
					if spec.dpop != nil {
						want.jkt = spec.dpop.JKT()
					}
					if !ok || got != want {
						t.Errorf("source %d (%s, %q): got a token issued to %+v (known: %v), want one issued to %+v", i, spec.provider.url, spec.client, got, ok, want)
					}
					if spec.dpop != nil && signer != spec.dpop {
						t.Errorf("source %d: got signer %v, want its own DPoP key", i, signer)
					}
				}
				if got := p1.grants() + p2.grants() - before; got != tc.want {
					t.Errorf("grants at the providers: got %d, want %d", got, tc.want)
				}
			})
		}
	}
}
