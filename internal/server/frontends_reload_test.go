package server_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/server"
)

// TestFrontendsReloadUnderLoad reloads a gateway of two frontends (shop
// and admin, on hosts of their own) into one with a third (partner, at
// /partner/ of shop's host) and back, several times, while both keep
// serving signed-in traffic: no request of shop or admin fails, and their
// sessions live through every reload. Partner's session is refused while
// partner is gone and works again when it comes back.
func TestFrontendsReloadUnderLoad(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	shop, admin := "http://shop.localhost:"+port+"/", "http://admin.localhost:"+port+"/"
	partner := shop + "partner/"
	_, demoSrv := demoProvider(t, "", func(o *idp.Options) {
		o.Clients = nil
		for _, c := range []struct{ id, base string }{{"shop", shop}, {"admin", admin}, {"partner", partner}} {
			o.Clients = append(o.Clients, idp.Client{
				ID: c.id, Secret: c.id + "-secret",
				RedirectURIs:           []string{c.base + "bff/callback"},
				PostLogoutRedirectURIs: []string{c.base},
			})
		}
	})
	up := newUpstream(t, nil)
	configWith := func(withPartner bool) (*config.Config, error) {
		data := fmt.Sprintf(`oidc:
  issuer: %s
session:
  store: memory
  keys: [%q]
# The traffic below is a flood on purpose.
rate_limit: {api_per_second: 1000000, login_per_minute: 1000000}
apis:
  - {path: /api/orders/, upstream: %q, token: user}
frontends:
  - {name: shop, public_url: %q, oidc: {client_id: shop, client_secret: shop-secret}}
  - {name: admin, public_url: %q, oidc: {client_id: admin, client_secret: admin-secret}}
`, demoSrv.URL, testKey, up.URL+"/v1/", strings.TrimSuffix(shop, "/"), strings.TrimSuffix(admin, "/"))
		if withPartner {
			data += fmt.Sprintf("  - {name: partner, public_url: %q, path: /partner/, oidc: {client_id: partner, client_secret: partner-secret}}\n", strings.TrimSuffix(shop, "/"))
		}
		return config.Parse("cloakroom.yaml", []byte(data), nil)
	}
	first, err := configWith(true)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	reload := make(chan struct{})
	var withPartner atomic.Bool
	g := runGateway(t, ln, first, server.Options{
		Reload:     reload,
		LoadConfig: func() (*config.Config, error) { return configWith(withPartner.Load()) },
	})
	hc := fbLoopback()
	for _, base := range []string{shop, admin, partner} {
		fbWaitReady(t, hc, base, g)
	}

	// One browser, signed in to all three.
	b := newBrowser(t)
	b.c.Transport = hc.Transport
	for _, base := range []string{shop, admin, partner} {
		auth := location(t, b.get(base+"bff/login?returnUrl="+url.QueryEscape(mustURL(base).Path)))
		cb := demoLogin(t, b, auth, "alice", "alice")
		if r := b.get(cb.String()); r.StatusCode != http.StatusOK {
			t.Fatalf("sign-in at %s: %d %s", base, r.StatusCode, r.Body)
		}
	}
	userStatus := func(base string) int {
		t.Helper()
		return b.get(base+"bff/user", "X-CSRF", "1").StatusCode
	}
	for _, base := range []string{shop, admin, partner} {
		if code := userStatus(base); code != http.StatusOK {
			t.Fatalf("/bff/user at %s after signing in: %d", base, code)
		}
	}

	// Shop's API and admin's /bff/user, from four connections at once,
	// through every reload.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total atomic.Int64
	failures := map[string]int{}
	for i := range 4 {
		target := shop + "api/orders/x"
		if i%2 == 1 {
			target = admin + "bff/user"
		}
		wg.Go(func() {
			for !stop.Load() {
				req, _ := http.NewRequest(http.MethodGet, target, nil)
				req.Header.Set("X-CSRF", "1")
				resp, err := b.c.Do(req)
				total.Add(1)
				what := ""
				if err != nil {
					what = err.Error()
				} else {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						what = resp.Status
					}
				}
				if what != "" {
					mu.Lock()
					failures[target+": "+what]++
					mu.Unlock()
				}
			}
		})
	}
	swap := func(partnerIn bool) {
		t.Helper()
		n := strings.Count(g.Logs.String(), "configuration reloaded")
		withPartner.Store(partnerIn)
		reload <- struct{}{}
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(g.Logs.String(), "configuration reloaded") == n {
			if time.Now().After(deadline) || strings.Contains(g.Logs.String(), "configuration reload refused") {
				t.Fatalf("reload with partner %v never applied; logs:\n%s", partnerIn, g.Logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// traffic waits until more requests have run on the configuration in
	// place.
	traffic := func() {
		t.Helper()
		n := total.Load() + 20
		deadline := time.Now().Add(20 * time.Second)
		for total.Load() < n {
			if time.Now().After(deadline) {
				t.Fatal("the load stalled")
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range 3 {
		traffic()
		swap(false)
		traffic()
		// Partner's requests now go to shop, whose path / holds them:
		// partner's session is not shop's.
		if code := userStatus(partner); code == http.StatusOK {
			t.Errorf("partner's /bff/user while partner is removed: %d, want no session", code)
		}
		traffic()
		swap(true)
		if code := userStatus(partner); code != http.StatusOK {
			t.Errorf("partner's /bff/user after partner came back: %d, want 200", code)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d requests of shop and admin through 6 reloads", total.Load())
	if total.Load() < 20 {
		t.Fatalf("only %d requests ran through the reloads: the load proves nothing", total.Load())
	}
	if len(failures) > 0 {
		t.Errorf("of %d requests of shop and admin, these failed across the reloads: %v", total.Load(), failures)
	}
	for _, base := range []string{shop, admin} {
		if code := userStatus(base); code != http.StatusOK {
			t.Errorf("/bff/user at %s after the reloads: %d, want 200", base, code)
		}
	}
}
