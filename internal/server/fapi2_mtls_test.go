package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidctest/nodeop"
	"github.com/cloakroom/cloakroom/internal/server"
)

// TestFAPI2TLSClientAuth signs in through the gateway with oidc.profile
// fapi2 at oidc-provider in its FAPI 2.0 profile (PAR required, mTLS
// client authentication, certificate-bound tokens): the configuration
// passes Validate (warned only for plain http on localhost), the browser's
// URL carries only client_id and request_uri, and /bff/user answers the
// provider's user.
func TestFAPI2TLSClientAuth(t *testing.T) {
	ln, public := listenLocal(t)
	ca := nodeop.NewCA(t)
	cert := ca.ClientCert(t, "web")
	p := nodeop.Start(t, nodeop.Options{
		CA: ca, FAPI2: true, PAR: true, RequirePAR: true, MTLS: true,
		Clients: []nodeop.Client{{
			ClientID: "web", TokenEndpointAuthMethod: "tls_client_auth",
			TLSClientAuthSubjectDN:                cert.SubjectDN(),
			TLSClientCertificateBoundAccessTokens: true,
			RedirectURIs:                          []string{public + "/bff/callback"},
			PostLogoutRedirectURIs:                []string{public + "/"},
		}},
	})
	cfg := baseConfig(public, p.Issuer, "web", "")
	cfg.OIDC.ClientAuth = config.TLSClientAuth
	cfg.OIDC.ClientCertificateFile = cert.CertFile
	cfg.OIDC.ClientCertificateKeyFile = cert.KeyFile
	cfg.OIDC.Profile = config.ProfileFAPI2
	for _, pr := range cfg.Validate() {
		if !pr.Warning {
			t.Errorf("Validate: %v", pr)
		}
	}
	// The test's client trusts the test CA; the gateway adds its client
	// certificate from the configuration.
	g := startGateway(t, ln, cfg, server.Options{HTTPClient: p.CA.HTTPClient(t)})

	b := newBrowser(t)
	auth := location(t, b.get(g.URL+"/bff/login?returnUrl=/app/home"))
	if got := queryKeys(auth); !slices.Equal(got, []string{"client_id", "request_uri"}) {
		t.Errorf("authorization URL parameters %q, want only client_id and request_uri", got)
	}
	cb, err := p.Login(t.Context(), p.Browser(t), auth.String())
	if err != nil {
		t.Fatal(err)
	}
	if cb.Query().Get("iss") != p.Issuer {
		t.Errorf("callback iss %q, want %q", cb.Query().Get("iss"), p.Issuer)
	}
	if land := b.get(cb.String()); land.StatusCode != http.StatusOK {
		t.Fatalf("callback: %d %s; logs:\n%s", land.StatusCode, land.Body, g.Logs)
	}
	user := b.get(g.URL+"/bff/user", "X-CSRF", "1")
	if user.StatusCode != http.StatusOK || !strings.Contains(user.Body, `"value":"`+p.Username+`"`) {
		t.Errorf("/bff/user: %d %s, want the claims of %s", user.StatusCode, user.Body, p.Username)
	}
}
