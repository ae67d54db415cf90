package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/demo/idp"
)

// TestFrontendsShareClientTokens: two frontends of one provider, each
// with a token: client route. With the same service client they share
// its client-credentials token: the provider sees one grant for both.
// With different service clients each gets its own, from its own client.
func TestFrontendsShareClientTokens(t *testing.T) {
	for _, tc := range []struct {
		name       string
		shop, adm  string // service client IDs
		wantGrants int
	}{
		{"same service client", "svc-a", "svc-a", 1},
		{"other service clients", "svc-a", "svc-b", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, port := listenPort(t)
			shop := "http://shop.localhost:" + port + "/"
			admin := "http://admin.localhost:" + port + "/"
			demo := newCountedProvider(t, []idp.Client{
				demoClient("c0", shop), demoClient("c1", admin),
				{ID: "svc-a", Secret: "svc-a-secret"}, {ID: "svc-b", Secret: "svc-b-secret"},
			}, nil)
			shopUp, adminUp := newUpstream(t, nil), newUpstream(t, nil)
			entry := func(name, base, client, service, upstream string) string {
				return fmt.Sprintf(`  - name: %s
    public_url: %q
    oidc: {client_id: %s, client_secret: %s-secret, service_client: {client_id: %s, client_secret: %s-secret}}
    apis:
      - {path: /api/stock/, upstream: %q, token: client}
`, name, strings.TrimSuffix(base, "/"), client, client, service, service, upstream+"/")
			}
			runFrontends(t, ln, demo.srv.URL, entry("shop", shop, "c0", tc.shop, shopUp.URL)+entry("admin", admin, "c1", tc.adm, adminUp.URL))

			b := loopbackBrowser(t)
			for _, base := range []string{shop, admin} {
				waitReady(t, b, base)
			}
			for range 2 {
				for _, f := range []struct {
					base, service string
					up            *upstream
				}{{shop, tc.shop, shopUp}, {admin, tc.adm, adminUp}} {
					r := b.get(f.base+"api/stock/x", "X-CSRF", "1")
					if r.StatusCode != http.StatusOK {
						t.Fatalf("%sapi/stock/x: got %d %s, want 200", f.base, r.StatusCode, r.Body)
					}
					reqs := f.up.Requests()
					claims, err := demo.VerifyAccessToken(bearerOf(reqs[len(reqs)-1]))
					if err != nil {
						t.Fatalf("%s: upstream got a bad token: %v", f.base, err)
					}
					if claims["client_id"] != f.service {
						t.Errorf("%s: got a token of client %v, want %s", f.base, claims["client_id"], f.service)
					}
				}
			}
			if got := demo.Stats().ClientCredentialsGrants; got != tc.wantGrants {
				t.Errorf("client_credentials grants at the provider: got %d, want %d", got, tc.wantGrants)
			}
		})
	}
}
