package server_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/hostile"
)

// POST /bff/token spends a refresh_token grant at the provider: it shares
// the session's API rate limit (rate_limit.api_per_second, a burst of
// twice that) with the API routes, and past it answers 429 without a
// call to the provider. Another session has its own budget.
func TestMediatedTokenRateLimit(t *testing.T) {
	e := newHostileEnv(t, func(c *config.Config) {
		c.OIDC.DPoP = true
		c.APIs[0].Mediate = true
		c.RateLimit.APIPerSecond = 1
	})
	dpopTokens(t, e)
	one, two := newBrowser(t), newBrowser(t)
	for _, b := range []*browser{one, two} {
		if r := e.login(t, b); r.StatusCode != http.StatusOK {
			t.Fatalf("login: %d %s", r.StatusCode, r.Body)
		}
	}
	mediate := func(b *browser) int {
		req, err := http.NewRequest(http.MethodPost, e.g.URL+"/bff/token?api="+url.QueryEscape("/api/orders/"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-CSRF", "1")
		req.Header.Set(oidc.HeaderDPoP, "not-a-proof")
		return b.do(req).StatusCode
	}
	tokenRequests := e.p.TokenRequests()
	// The clock stands still: the burst of 2 is all there is.
	var got []int
	for range 3 {
		got = append(got, mediate(one))
	}
	want := []int{http.StatusBadRequest, http.StatusBadRequest, http.StatusTooManyRequests}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("POST /bff/token #%d: got %d, want %d", i+1, got[i], want[i])
		}
	}
	if r := e.api(one); r.StatusCode != http.StatusTooManyRequests {
		t.Errorf("API after the session's budget went on mediation: got %d, want 429", r.StatusCode)
	}
	if got := mediate(two); got != http.StatusBadRequest {
		t.Errorf("POST /bff/token of another session: got %d, want 400", got)
	}
	if n := e.p.TokenRequests() - tokenRequests; n != 0 {
		t.Errorf("%d token requests, want 0", n)
	}
}

// A mediated route's require policy holds at /bff/token too: a session
// the route would refuse (403) gets no token for it to call the API
// directly, and nothing reaches the provider; a session that meets it
// goes on to the proof check.
func TestMediatedTokenRoutePolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		require config.Require
		want    int
	}{
		{"claim not held", config.Require{Claims: map[string][]string{"sub": {"someone-else"}}}, http.StatusForbidden},
		{"scope not granted", config.Require{Scopes: []string{"admin"}}, http.StatusForbidden},
		{"path binding", config.Require{Path: map[string]string{"id": "{claims.sub}"}}, http.StatusForbidden},
		{"claim held", config.Require{Claims: map[string][]string{"sub": {hostile.DefaultSubject}}}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newHostileEnv(t, func(c *config.Config) {
				c.OIDC.DPoP = true
				c.APIs[0].Mediate = true
				c.APIs[0].Require = &tc.require
			})
			dpopTokens(t, e)
			b := newBrowser(t)
			if r := e.login(t, b); r.StatusCode != http.StatusOK {
				t.Fatalf("login: %d %s", r.StatusCode, r.Body)
			}
			tokenRequests := e.p.TokenRequests()
			target := e.g.URL + "/bff/token?api=" + url.QueryEscape("/api/orders/")
			wantGet := http.StatusOK
			if tc.want == http.StatusForbidden {
				wantGet = http.StatusForbidden
			}
			if got := b.get(target, "X-CSRF", "1").StatusCode; got != wantGet {
				t.Errorf("GET /bff/token: got %d, want %d", got, wantGet)
			}
			req, err := http.NewRequest(http.MethodPost, target, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-CSRF", "1")
			req.Header.Set(oidc.HeaderDPoP, "not-a-proof")
			if got := b.do(req).StatusCode; got != tc.want {
				t.Errorf("POST /bff/token: got %d, want %d", got, tc.want)
			}
			if n := e.p.TokenRequests() - tokenRequests; n != 0 {
				t.Errorf("%d token requests, want 0", n)
			}
		})
	}
}

// dpopTokens makes e's provider answer token_type DPoP, as oidc.dpop
// expects.
func dpopTokens(t *testing.T, e *hostileEnv) {
	t.Helper()
	e.p.Edit(func(p *hostile.Provider) {
		p.TokenJSON = func(form url.Values) map[string]any {
			c := p.IDClaimsFor(form)
			resp := e.record(p.TokenResponse(p.Mint(t, hostile.Token{Claims: c})), c)
			resp["token_type"] = oidc.DPoPScheme
			return resp
		}
	})
}
