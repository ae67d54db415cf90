package oidc_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/hostile"
)

func withSkew(d time.Duration) clientOpt {
	return func(o *oidc.Options) { o.ClockSkew = d }
}

// lockedBuffer is a log sink tests read while the client writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func withLog(buf *lockedBuffer) clientOpt {
	return func(o *oidc.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// The provider's clock may be behind or ahead of ours: exp, iat and nbf of
// ID and logout tokens get Options.ClockSkew of leeway, and no more.
// Margins are tens of seconds, far from the second that JWT times round to.
func TestClockSkew(t *testing.T) {
	p := hostile.New(t)
	at := func(claim string, d time.Duration) idEdit {
		return func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c[claim] = unix(p, d) }
	}
	cases := []struct {
		name string
		skew time.Duration
		edit idEdit
		ok   bool
	}{
		{"exp 30s ago, skew 60s", time.Minute, at("exp", -30*time.Second), true},
		{"exp 90s ago, skew 60s", time.Minute, at("exp", -90*time.Second), false},
		{"iat in 30s, skew 60s", time.Minute, at("iat", 30*time.Second), true},
		{"iat in 90s, skew 60s", time.Minute, at("iat", 90*time.Second), false},
		{"nbf in 30s, skew 60s", time.Minute, at("nbf", 30*time.Second), true},
		{"nbf in 90s, skew 60s", time.Minute, at("nbf", 90*time.Second), false},
		{"exp 4m ago, skew 5m", 5 * time.Minute, at("exp", -4*time.Minute), true},
		{"exp 6m ago, skew 5m", 5 * time.Minute, at("exp", -6*time.Minute), false},
		{"exp 20s ago, no skew", 0, at("exp", -20*time.Second), false},
		{"iat in 20s, no skew", 0, at("iat", 20*time.Second), false},
		{"nbf in 20s, no skew", 0, at("nbf", 20*time.Second), false},
		{"exp as a fraction", time.Minute, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["exp"] = float64(unix(p, time.Minute)) + 0.5
		}, true},
		{"exp a string", time.Minute, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["exp"] = "tomorrow"
		}, false},
		{"exp out of range", time.Minute, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			c["exp"] = 1e300
		}, false},
	}
	for _, tc := range cases {
		t.Run("id token at login/"+tc.name, func(t *testing.T) {
			p.Reset()
			raw := mintID(t, p, tc.edit)
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
			c := discovered(t, p, withSkew(tc.skew))
			_, err := c.Exchange(t.Context(), "code", "verifier", hostile.DefaultNonce)
			if (err == nil) != tc.ok {
				t.Fatalf("Exchange: %v, want ok %t", err, tc.ok)
			}
			if err != nil && !errors.Is(err, oidc.ErrUntrusted) {
				t.Errorf("error %q does not wrap ErrUntrusted", err)
			}
		})
		t.Run("id token at refresh/"+tc.name, func(t *testing.T) {
			p.Reset()
			raw := mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
				delete(c, "nonce")
				tc.edit(p, tk, c)
			})
			p.TokenJSON = func(url.Values) map[string]any { return p.TokenResponse(raw) }
			c := discovered(t, p, withSkew(tc.skew))
			_, err := c.Refresh(t.Context(), "rt", hostile.DefaultSubject, oidc.TokenParams{})
			if (err == nil) != tc.ok {
				t.Fatalf("Refresh: %v, want ok %t", err, tc.ok)
			}
			if err != nil && !errors.Is(err, oidc.ErrUntrusted) {
				t.Errorf("error %q does not wrap ErrUntrusted", err)
			}
		})
		t.Run("logout token/"+tc.name, func(t *testing.T) {
			p.Reset()
			c := discovered(t, p, withSkew(tc.skew))
			_, err := c.VerifyLogoutToken(t.Context(), mintLogout(t, p, tc.edit))
			if (err == nil) != tc.ok {
				t.Fatalf("VerifyLogoutToken: %v, want ok %t", err, tc.ok)
			}
		})
	}
	t.Run("negative skew means the default", func(t *testing.T) {
		if got := oidc.New(options(p, withSkew(-1))).ClockSkew(); got != oidc.DefaultClockSkew {
			t.Errorf("ClockSkew() = %v, want %v", got, oidc.DefaultClockSkew)
		}
	})
}

// Ory Hydra v2.3.0 sends logout tokens without exp: accepted while their
// iat is fresh, with an Expiry that bounds the replay cache.
func TestLogoutTokenWithoutExp(t *testing.T) {
	p := hostile.New(t)
	var logs lockedBuffer
	c := discovered(t, p, withLog(&logs))
	claims := p.HydraLogoutClaims("hydra-sid-1")
	lt, err := c.VerifyLogoutToken(t.Context(), p.Mint(t, hostile.Token{Claims: claims}))
	if err != nil {
		t.Fatalf("VerifyLogoutToken: %v", err)
	}
	iat := time.Unix(claims["iat"].(int64), 0)
	if lt.SID != "hydra-sid-1" || lt.Subject != "" || lt.JTI != claims["jti"] {
		t.Errorf("got %+v, want sid hydra-sid-1, no subject, the jti", lt)
	}
	if want := iat.Add(oidc.LogoutMaxAge); !lt.Expiry.Equal(want) {
		t.Errorf("Expiry %v, want iat + LogoutMaxAge = %v", lt.Expiry, want)
	}
	if !strings.Contains(logs.String(), `"level":"DEBUG"`) || !strings.Contains(logs.String(), "no exp") {
		t.Errorf("no debug line about the missing exp; logs:\n%s", logs.String())
	}

	// With exp, Expiry is the earlier of exp and iat + LogoutMaxAge.
	for name, tc := range map[string]struct {
		exp  time.Duration
		want func(iat, exp time.Time) time.Time
	}{
		"exp sooner": {2 * time.Minute, func(iat, exp time.Time) time.Time { return exp }},
		"exp later":  {time.Hour, func(iat, exp time.Time) time.Time { return iat.Add(oidc.LogoutMaxAge) }},
	} {
		t.Run(name, func(t *testing.T) {
			c := p.LogoutClaims()
			c["exp"] = unix(p, tc.exp)
			lt, err := discovered(t, p).VerifyLogoutToken(t.Context(), p.Mint(t, hostile.Token{Claims: c}))
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want(time.Unix(c["iat"].(int64), 0), time.Unix(c["exp"].(int64), 0))
			if !lt.Expiry.Equal(want) {
				t.Errorf("Expiry %v, want %v", lt.Expiry, want)
			}
		})
	}
}

// A token response's token_type must be the one asked for, in any case
// (RFC 6749 §5.1, §7.1): else the login, the refresh, the client
// credentials or the exchange fails with ErrUntrusted.
func TestTokenType(t *testing.T) {
	p := hostile.New(t)
	const oldRT = "rt-old-5a0c2e"
	calls := map[string]func(ctx context.Context, c *oidc.Client) error{
		"Exchange": func(ctx context.Context, c *oidc.Client) error {
			_, err := c.Exchange(ctx, "code", "verifier", hostile.DefaultNonce)
			return err
		},
		"Refresh": func(ctx context.Context, c *oidc.Client) error {
			_, err := c.Refresh(ctx, oldRT, hostile.DefaultSubject, oidc.TokenParams{})
			return err
		},
		"ClientCredentials": func(ctx context.Context, c *oidc.Client) error {
			_, err := c.ClientCredentials(ctx, oidc.TokenParams{Audience: "api"})
			return err
		},
		"ExchangeToken": func(ctx context.Context, c *oidc.Client) error {
			_, err := c.ExchangeToken(ctx, "subject-token", oidc.TokenParams{Audience: "api"})
			return err
		},
	}
	cases := []struct {
		tokenType any    // nil: no token_type member
		asked     string // Options.TokenType
		ok        bool
	}{
		{"Bearer", "", true},
		{"bearer", "", true},
		{"BEARER", "", true},
		{nil, "", false},
		{"", "", false},
		{"mac", "", false},
		{"DPoP", "", false},
		{"N_A", "", false},
		{"Bearer ", "", false},
		{42, "", false},
		{"DPoP", "DPoP", true},
		{"dpop", "DPoP", true},
		{"Bearer", "DPoP", false},
	}
	for call, do := range calls {
		for _, tc := range cases {
			name := call + "/" + strings.ReplaceAll(strings.TrimSpace(fmtAny(tc.tokenType)), " ", "_") + "/asked_" + tc.asked
			t.Run(name, func(t *testing.T) {
				p.Reset()
				var resp map[string]any
				p.TokenJSON = func(form url.Values) map[string]any {
					c := p.IDClaimsFor(form)
					if call == "Refresh" {
						delete(c, "nonce")
					}
					resp = p.TokenResponse(p.Mint(t, hostile.Token{Claims: c}))
					if tc.tokenType == nil {
						delete(resp, "token_type")
					} else {
						resp["token_type"] = tc.tokenType
					}
					return resp
				}
				c := discovered(t, p, func(o *oidc.Options) { o.TokenType = tc.asked })
				err := do(t.Context(), c)
				if tc.ok {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				if err == nil {
					t.Fatal("accepted")
				}
				_, isJSONErr := tc.tokenType.(int)
				if !isJSONErr && !errors.Is(err, oidc.ErrUntrusted) {
					t.Errorf("error %q does not wrap ErrUntrusted", err)
				}
				noLeak(t, err, oldRT, resp["access_token"].(string), resp["refresh_token"].(string))
				if call == "Refresh" && !isJSONErr {
					for _, tok := range []string{resp["refresh_token"].(string), resp["access_token"].(string)} {
						if !p.Revoked(tok) {
							t.Errorf("a token of the refused answer was not revoked; revocations: %d", len(p.RevocationForms()))
						}
					}
				}
			})
		}
	}
}

func fmtAny(v any) string {
	switch x := v.(type) {
	case nil:
		return "missing"
	case string:
		if x == "" {
			return "empty"
		}
		return x
	default:
		return "number"
	}
}

// How the token endpoint's refusals of a refresh are told apart: a dead
// grant ends the session, a client authentication failure is the
// operator's to fix, anything else is an outage.
func TestRefreshErrorClassification(t *testing.T) {
	p := hostile.New(t)
	const (
		dead       = "dead"
		clientAuth = "client_auth"
		outage     = "outage"
	)
	status := func(code int, errCode string) func(p *hostile.Provider) {
		return func(p *hostile.Provider) {
			m := map[string]any{}
			if errCode != "" {
				m["error"] = errCode
			}
			p.Token = hostile.Status(code, m)
		}
	}
	cases := []struct {
		name string
		set  func(p *hostile.Provider)
		opts []clientOpt
		want string
	}{
		{"400 invalid_grant", status(400, "invalid_grant"), nil, dead},
		{"400 invalid_request (Dex v2.45.1)", status(400, "invalid_request"), nil, dead},
		{"400 unsupported_grant_type", status(400, "unsupported_grant_type"), nil, dead},
		{"400 without an error code", status(400, ""), nil, dead},
		{"400 with an overlong error code", status(400, strings.Repeat("invalid_grant ", 8)+hostile.Canary), nil, dead},
		{"400 with a control character in the error code", status(400, "invalid_grant\n"+hostile.Canary), nil, dead},
		{"400 with an HTML body", func(p *hostile.Provider) {
			p.Token = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte("<h1>" + hostile.Canary + "</h1>"))
			}
		}, nil, dead},
		{"403 invalid_grant", status(403, "invalid_grant"), nil, dead},
		{"401 invalid_client", status(401, "invalid_client"), nil, clientAuth},
		{"400 invalid_client", status(400, "invalid_client"), nil, clientAuth},
		{"401 without an error code", status(401, ""), nil, clientAuth},
		{"400 use_dpop_nonce", status(400, "use_dpop_nonce"), nil, outage},
		{"400 invalid_dpop_proof", status(400, "invalid_dpop_proof"), nil, outage},
		{"403 access_denied", status(403, "access_denied"), nil, outage},
		{"404", status(404, ""), nil, outage},
		{"429 slow_down", status(429, "slow_down"), nil, outage},
		{"500 server_error", status(500, "server_error"), nil, outage},
		{"503 temporarily_unavailable", status(503, "temporarily_unavailable"), nil, outage},
		{"never answers", func(p *hostile.Provider) { p.Token = p.Hang }, []clientOpt{withTimeout(hangTimeout)}, outage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.Reset()
			tc.set(p)
			var logs lockedBuffer
			var grants []string
			var mu sync.Mutex
			opts := append([]clientOpt{withLog(&logs), func(o *oidc.Options) {
				o.OnClientAuthFailure = func(grant string) {
					mu.Lock()
					grants = append(grants, grant)
					mu.Unlock()
				}
			}}, tc.opts...)
			c := discovered(t, p, opts...)
			_, err := c.Refresh(t.Context(), "rt-classified-3e9d", hostile.DefaultSubject, oidc.TokenParams{})
			if err == nil {
				t.Fatal("Refresh succeeded")
			}
			got := outage
			switch {
			case oidc.IsDeadGrant(err) && oidc.IsClientAuthFailure(err):
				t.Fatalf("%v is both a dead grant and a client authentication failure", err)
			case oidc.IsDeadGrant(err):
				got = dead
			case oidc.IsClientAuthFailure(err):
				got = clientAuth
			}
			if got != tc.want {
				t.Errorf("%v classified %s, want %s", err, got, tc.want)
			}
			if errors.Is(err, oidc.ErrUntrusted) {
				t.Errorf("%v wraps ErrUntrusted", err)
			}
			mu.Lock()
			defer mu.Unlock()
			wantGrants := []string(nil)
			if tc.want == clientAuth {
				wantGrants = []string{"refresh_token"}
				if !strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), "oidc.client_id") {
					t.Errorf("no error line naming the fix; logs:\n%s", logs.String())
				}
			}
			if !slices.Equal(grants, wantGrants) {
				t.Errorf("OnClientAuthFailure got %q, want %q", grants, wantGrants)
			}
			for _, secret := range []string{hostile.DefaultClientSecret, "rt-classified-3e9d", hostile.Canary} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("logs quote %q:\n%s", secret, logs.String())
				}
			}
			noLeak(t, err, "rt-classified-3e9d")
		})
	}
}

// Every grant reports a client authentication failure.
func TestClientAuthFailureEveryGrant(t *testing.T) {
	p := hostile.New(t)
	p.Token = hostile.Status(http.StatusUnauthorized, map[string]any{"error": "invalid_client"})
	var grants []string
	c := discovered(t, p, func(o *oidc.Options) {
		o.OnClientAuthFailure = func(grant string) { grants = append(grants, grant) }
	})
	ctx := t.Context()
	errs := []error{}
	_, err := c.Exchange(ctx, "code", "verifier", hostile.DefaultNonce)
	errs = append(errs, err)
	_, err = c.Refresh(ctx, "rt", hostile.DefaultSubject, oidc.TokenParams{})
	errs = append(errs, err)
	_, err = c.ClientCredentials(ctx, oidc.TokenParams{})
	errs = append(errs, err)
	_, err = c.ExchangeToken(ctx, "subject-token", oidc.TokenParams{Audience: "api"})
	errs = append(errs, err)
	for i, err := range errs {
		if !oidc.IsClientAuthFailure(err) {
			t.Errorf("call %d: %v is not a client authentication failure", i, err)
		}
	}
	if want := []string{"authorization_code", "refresh_token", "client_credentials", "token_exchange"}; !slices.Equal(grants, want) {
		t.Errorf("OnClientAuthFailure got %q, want %q", grants, want)
	}
}

// A refreshed ID token that fails validation is ErrUntrusted, and the
// refresh and access tokens of that answer are revoked.
func TestRefreshUntrusted(t *testing.T) {
	p := hostile.New(t)
	const oldRT = "rt-old-untrusted-7f21"
	cases := map[string]idEdit{
		"another sub":    func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["sub"] = "mallory" },
		"another iss":    func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["iss"] = p.Attacker.URL },
		"another aud":    func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["aud"] = "another-client" },
		"azp of another": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["azp"] = "another-client" },
		"bad signature":  func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.BadSignature = true },
		"attacker's key": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
			tk.Key = p.Attacker.Key
			tk.Header = map[string]any{"kid": p.RSA.ID}
		},
		"missing iat":       func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "iat") },
		"expired":           func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["exp"] = unix(p, -10*time.Minute) },
		"alg none":          func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { tk.Alg = "none" },
		"missing sub":       func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { delete(c, "sub") },
		"extra aud, no azp": func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["aud"] = []string{p.ClientID, "x"} },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			p.Reset()
			var resp map[string]any
			p.TokenJSON = func(url.Values) map[string]any {
				resp = p.TokenResponse(mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) {
					delete(c, "nonce")
					edit(p, tk, c)
				}))
				return resp
			}
			c := discovered(t, p)
			got, err := c.Refresh(t.Context(), oldRT, hostile.DefaultSubject, oidc.TokenParams{})
			if err == nil {
				t.Fatalf("Refresh accepted it: %+v", got)
			}
			if !errors.Is(err, oidc.ErrUntrusted) {
				t.Errorf("error %q does not wrap ErrUntrusted", err)
			}
			if oidc.IsDeadGrant(err) || oidc.IsClientAuthFailure(err) {
				t.Errorf("error %q classified as a grant error", err)
			}
			for hint, tok := range map[string]string{"refresh_token": resp["refresh_token"].(string), "access_token": resp["access_token"].(string)} {
				if !p.Revoked(tok) {
					t.Errorf("the answer's %s was not revoked", hint)
				}
			}
			if p.Revoked(oldRT) {
				t.Error("Refresh revoked the refresh token it was given: that is the caller's")
			}
			noLeak(t, err, oldRT, resp["refresh_token"].(string), resp["access_token"].(string))
			untouched(t, p)
		})
	}

	// A key set that cannot be fetched says nothing about the token: that
	// is an outage, and nothing is revoked.
	t.Run("key set down", func(t *testing.T) {
		p.Reset()
		p.JWKS = hostile.Status(http.StatusServiceUnavailable, nil)
		p.TokenJSON = func(form url.Values) map[string]any {
			return p.TokenResponse(p.Mint(t, hostile.Token{Claims: p.IDClaimsFor(form)}))
		}
		c := discovered(t, p)
		_, err := c.Refresh(t.Context(), oldRT, hostile.DefaultSubject, oidc.TokenParams{})
		if err == nil {
			t.Fatal("Refresh succeeded without keys")
		}
		if errors.Is(err, oidc.ErrUntrusted) {
			t.Errorf("error %q wraps ErrUntrusted: the token was not found bad, only not checked", err)
		}
		if n := len(p.RevocationForms()); n != 0 {
			t.Errorf("%d revocations, want 0", n)
		}
	})

	t.Run("revocation endpoint hangs", func(t *testing.T) {
		p.Reset()
		p.Revocation = p.Hang
		p.TokenJSON = func(url.Values) map[string]any {
			return p.TokenResponse(mintID(t, p, func(p *hostile.Provider, tk *hostile.Token, c map[string]any) { c["sub"] = "mallory" }))
		}
		c := discovered(t, p, withTimeout(hangTimeout))
		if _, err := c.Refresh(t.Context(), oldRT, hostile.DefaultSubject, oidc.TokenParams{}); !errors.Is(err, oidc.ErrUntrusted) {
			t.Fatalf("Refresh: %v, want ErrUntrusted", err)
		}
	})
}
