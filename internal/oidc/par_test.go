package oidc_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/hostile"
	"github.com/cloakroom/cloakroom/internal/oidctest/nodeop"
	"golang.org/x/oauth2"
)

// TestPARAgainstOIDCProvider signs in through oidc-provider with each PAR
// mode: auto and required push the request (the browser's URL has only
// client_id and request_uri), off sends it in the URL; each login ends in
// a code exchange whose ID token carries the nonce, so the provider used
// the parameters that were pushed.
func TestPARAgainstOIDCProvider(t *testing.T) {
	const (
		redirect = "https://app.example.test/bff/callback"
		secret   = "a-long-enough-client-secret-for-par-tests"
	)
	p := nodeop.Start(t, nodeop.Options{
		PAR: true,
		Clients: []nodeop.Client{{
			ClientID: "web", ClientSecret: secret, RedirectURIs: []string{redirect},
			IDTokenSignedResponseAlg: "ES256",
		}},
	})
	for _, tc := range []struct {
		mode, profile string
		pushed        bool
	}{
		{"", "", true},
		{oidc.PARAuto, "", true},
		{oidc.PARRequired, "", true},
		{oidc.PAROff, "", false},
	} {
		t.Run("par "+tc.mode, func(t *testing.T) {
			c := oidc.New(oidc.Options{
				Issuer: p.Issuer, ClientID: "web", ClientSecret: secret, RedirectURL: redirect,
				Scopes: []string{"openid", "email"}, AuthParams: map[string]string{"ui_locales": "en"},
				HTTPClient: p.CA.HTTPClient(t), PAR: tc.mode, Profile: tc.profile, ClockSkew: -1,
			})
			if err := c.Discover(t.Context()); err != nil {
				t.Fatal(err)
			}
			a := oidc.AuthRequest{State: "state-" + tc.mode, Nonce: "nonce-" + tc.mode, Verifier: oauth2.GenerateVerifier()}
			authURL, err := c.AuthCodeURL(t.Context(), a)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(authURL)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Scheme + "://" + u.Host + u.Path; got != p.AuthorizationEndpoint {
				t.Errorf("authorization URL at %s, want %s", got, p.AuthorizationEndpoint)
			}
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range u.Query() {
					if !yield(k) {
						return
					}
				}
			})
			want := []string{"client_id", "code_challenge", "code_challenge_method", "nonce", "redirect_uri", "response_type", "scope", "state", "ui_locales"}
			if tc.pushed {
				want = []string{"client_id", "request_uri"}
			}
			if !slices.Equal(keys, want) {
				t.Errorf("authorization URL parameters %q, want %q", keys, want)
			}
			cb, err := p.Login(t.Context(), p.Browser(t), authURL)
			if err != nil {
				t.Fatal(err)
			}
			q := cb.Query()
			if q.Get("state") != a.State {
				t.Errorf("state %q, want %q", q.Get("state"), a.State)
			}
			if err := c.CheckIss(q.Get("iss")); err != nil {
				t.Error(err)
			}
			tok, err := c.Exchange(t.Context(), q.Get("code"), a.Verifier, a.Nonce)
			if err != nil {
				t.Fatal(err)
			}
			if tok.Subject != p.Username {
				t.Errorf("sub %q, want %q", tok.Subject, p.Username)
			}
		})
	}
}

// parProvider is a hostile provider whose discovery advertises a PAR
// endpoint answered by h, which also records the forms it was sent.
func parProvider(t *testing.T, h http.HandlerFunc) (*hostile.Provider, *[]url.Values) {
	t.Helper()
	var mu sync.Mutex
	var forms []url.Values
	par := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		mu.Lock()
		forms = append(forms, r.PostForm)
		mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(par.Close)
	p := hostile.New(t)
	p.EditDiscovery = func(doc map[string]any) {
		doc["pushed_authorization_request_endpoint"] = par.URL + "/par"
	}
	return p, &forms
}

// TestPARAnswers checks what comes of each answer of a PAR endpoint: only
// a request_uri in a 201 (or 200) makes an authorization URL, errors name
// the provider's status and error code and never quote its body.
func TestPARAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		wantErr string
		parErr  *oidc.PARError
	}{
		{"created", http.StatusCreated, `{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}`, "", nil},
		{"ok without expires_in", http.StatusOK, `{"request_uri":"urn:ietf:params:oauth:request_uri:abc"}`, "", nil},
		{"invalid_request", http.StatusBadRequest, `{"error":"invalid_request","error_description":"` + hostile.Canary + `"}`, "provider answered 400 invalid_request", &oidc.PARError{Code: "invalid_request", HTTP: 400}},
		{"invalid_client", http.StatusUnauthorized, `{"error":"invalid_client"}`, "provider answered 401 invalid_client", &oidc.PARError{Code: "invalid_client", HTTP: 401}},
		{"server error, HTML", http.StatusInternalServerError, "<html>" + hostile.Canary + "</html>", "provider answered 500 http_500", &oidc.PARError{Code: "http_500", HTTP: 500}},
		{"error code with quotes", http.StatusBadRequest, `{"error":"bad\"` + hostile.Canary + `"}`, "provider answered 400 http_400", &oidc.PARError{Code: "http_400", HTTP: 400}},
		{"no request_uri", http.StatusCreated, `{"expires_in":60,"x":"` + hostile.Canary + `"}`, "no usable request_uri", nil},
		{"not JSON", http.StatusCreated, hostile.Canary, "not a JSON object", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, forms := parProvider(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			var refused []string
			c := oidc.New(options(p, func(o *oidc.Options) {
				o.AuthParams = map[string]string{"acr_values": "urn:mace:incommon:iap:silver"}
				o.OnClientAuthFailure = func(g string) { refused = append(refused, g) }
			}))
			if err := c.Discover(t.Context()); err != nil {
				t.Fatal(err)
			}
			a := oidc.AuthRequest{State: "s", Nonce: "n", Verifier: strings.Repeat("v", 43), Prompt: "login", DPoPJKT: "jkt"}
			got, err := c.AuthCodeURL(t.Context(), a)
			noLeak(t, err)
			if tc.wantErr == "" {
				want := p.URL + hostile.PathAuthorize + "?client_id=" + p.ClientID + "&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aabc"
				if err != nil || got != want {
					t.Fatalf("got %q, %v, want %q", got, err, want)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %q, %v, want an error containing %q", got, err, tc.wantErr)
			}
			var pe *oidc.PARError
			if errors.As(err, &pe) != (tc.parErr != nil) || tc.parErr != nil && *pe != *tc.parErr {
				t.Errorf("error %#v, want PARError %#v", err, tc.parErr)
			}
			if wantRefused := tc.status == http.StatusUnauthorized; (len(refused) == 1) != wantRefused {
				t.Errorf("client auth failures %q, want one: %v", refused, wantRefused)
			}
			if len(*forms) != 1 {
				t.Fatalf("PAR endpoint got %d requests, want 1", len(*forms))
			}
			f := (*forms)[0]
			for k, want := range map[string]string{
				"response_type": "code", "client_id": p.ClientID, "redirect_uri": "http://127.0.0.1:1/bff/callback",
				"scope": "openid offline_access", "state": "s", "nonce": "n", "prompt": "login", "dpop_jkt": "jkt",
				"code_challenge": oauth2.S256ChallengeFromVerifier(a.Verifier), "code_challenge_method": "S256",
				"acr_values": "urn:mace:incommon:iap:silver",
			} {
				if f.Get(k) != want {
					t.Errorf("pushed %s = %q, want %q", k, f.Get(k), want)
				}
			}
			if f.Has("client_secret") {
				t.Error("client_secret_basic sent the secret in the body")
			}
		})
	}
}

// TestPARTimeout: a PAR endpoint that does not answer fails the request
// when the caller's context ends.
func TestPARTimeout(t *testing.T) {
	release := make(chan struct{})
	p, _ := parProvider(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := oidc.New(options(p))
	if err := c.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.AuthCodeURL(ctx, oidc.AuthRequest{State: "s", Nonce: "n", Verifier: "v"}); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// TestPARUnfitProviders: discovery refuses, with ErrUnfit and the
// configuration key named, a provider that cannot serve PAR required or the
// FAPI 2.0 profile; other modes accept it.
func TestPARUnfitProviders(t *testing.T) {
	const parEndpoint = "https://127.0.0.1:1/par"
	for _, tc := range []struct {
		name    string
		par     string
		profile string
		edit    func(doc map[string]any)
		want    string // "" when discovery succeeds
	}{
		{"auto without PAR", oidc.PARAuto, "", nil, ""},
		{"off without PAR", oidc.PAROff, "", nil, ""},
		{"required without PAR", oidc.PARRequired, "", nil, "oidc.par is required"},
		{"required with PAR", oidc.PARRequired, "", func(d map[string]any) { d["pushed_authorization_request_endpoint"] = parEndpoint }, ""},
		{"off, provider requires PAR", oidc.PAROff, "", func(d map[string]any) {
			d["pushed_authorization_request_endpoint"] = parEndpoint
			d["require_pushed_authorization_requests"] = true
		}, ""},
		{"required, PAR endpoint not a URL", oidc.PARRequired, "", func(d map[string]any) { d["pushed_authorization_request_endpoint"] = "/par" }, "pushed_authorization_request_endpoint: scheme"},
		{"fapi2 without PAR", oidc.PARAuto, oidc.ProfileFAPI2, func(d map[string]any) {
			d["id_token_signing_alg_values_supported"] = []string{"ES256"}
		}, "oidc.par is required (or oidc.profile needs it)"},
		{"fapi2 without iss parameter", oidc.PARAuto, oidc.ProfileFAPI2, func(d map[string]any) {
			d["pushed_authorization_request_endpoint"] = parEndpoint
			delete(d, "authorization_response_iss_parameter_supported")
		}, "oidc.profile fapi2 requires the iss authorization response parameter"},
		{"fapi2 with RS256 only", oidc.PARAuto, oidc.ProfileFAPI2, func(d map[string]any) {
			d["pushed_authorization_request_endpoint"] = parEndpoint
			d["id_token_signing_alg_values_supported"] = []string{"RS256", "HS256"}
		}, `oidc.profile fapi2 accepts only PS256, ES256 or EdDSA ID token signatures, and the provider offers ["RS256" "HS256"]`},
		{"fapi2 conformant", oidc.PARAuto, oidc.ProfileFAPI2, func(d map[string]any) {
			d["pushed_authorization_request_endpoint"] = parEndpoint
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := hostile.New(t)
			p.EditDiscovery = tc.edit
			c := oidc.New(options(p, func(o *oidc.Options) { o.PAR, o.Profile = tc.par, tc.profile }))
			err := c.Discover(t.Context())
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(tc.name, "not a URL") != !errors.Is(err, oidc.ErrUnfit) {
				t.Errorf("errors.Is(%v, ErrUnfit) = %v", err, errors.Is(err, oidc.ErrUnfit))
			}
			if c.Ready() {
				t.Error("client ready after a refused discovery")
			}
		})
	}
}

// TestFAPI2Callback: with the profile a callback without iss is refused
// even though the provider's metadata said nothing else, and ID tokens
// signed with RS256 are refused although the provider offers it.
func TestFAPI2Callback(t *testing.T) {
	p := hostile.New(t)
	p.EditDiscovery = func(d map[string]any) {
		d["pushed_authorization_request_endpoint"] = "https://127.0.0.1:1/par"
	}
	c := oidc.New(options(p, func(o *oidc.Options) { o.Profile = oidc.ProfileFAPI2 }))
	if err := c.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckIss(""); err == nil {
		t.Error("CheckIss accepted a callback without iss")
	}
	if err := c.CheckIss(p.Issuer); err != nil {
		t.Errorf("CheckIss(issuer): %v", err)
	}
	// The hostile provider signs with RS256 unless told otherwise; its
	// metadata offers RS256 and ES256, and the profile keeps ES256 only.
	_, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce)
	if err == nil || !strings.Contains(err.Error(), "RS256") {
		t.Errorf("Exchange of an RS256 ID token: got %v, want a refusal naming RS256", err)
	}
}

// TestStart: the first discovery's outcome is reported once, an unfit
// provider's wrapping ErrUnfit.
func TestStart(t *testing.T) {
	p := hostile.New(t)
	c := oidc.New(options(p, func(o *oidc.Options) { o.PAR = oidc.PARRequired }))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	first := c.Start(ctx)
	if err := <-first; !errors.Is(err, oidc.ErrUnfit) {
		t.Errorf("first discovery: got %v, want ErrUnfit", err)
	}
	if _, open := <-first; open {
		t.Error("the channel is not closed after the first outcome")
	}

	good := oidc.New(options(p))
	if err := <-good.Start(ctx); err != nil || !good.Ready() {
		t.Errorf("first discovery: got %v (ready %v), want success", err, good.Ready())
	}
}
