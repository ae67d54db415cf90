package oidc

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/tlstest"
)

// TestApplyMTLSAliases: the aliases of RFC 8705 §5 replace the endpoints
// the gateway calls itself, never the browser's; a bad alias fails
// discovery.
func TestApplyMTLSAliases(t *testing.T) {
	const doc = `{"issuer":"https://idp","authorization_endpoint":"https://idp/auth","token_endpoint":"https://idp/token",` +
		`"revocation_endpoint":"https://idp/revoke","end_session_endpoint":"https://idp/end",` +
		`"mtls_endpoint_aliases":%s}`
	tests := []struct {
		name, aliases string
		want          map[string]string
		err           string
	}{
		{"none", `null`, map[string]string{"token_endpoint": "https://idp/token"}, ""},
		{"token and revocation", `{"token_endpoint":"https://mtls.idp/token","revocation_endpoint":"https://mtls.idp/revoke","pushed_authorization_request_endpoint":"https://mtls.idp/par"}`,
			map[string]string{"token_endpoint": "https://mtls.idp/token", "revocation_endpoint": "https://mtls.idp/revoke", "pushed_authorization_request_endpoint": "https://mtls.idp/par", "authorization_endpoint": "https://idp/auth"}, ""},
		{"browser endpoints stay", `{"authorization_endpoint":"https://mtls.idp/auth","end_session_endpoint":"https://mtls.idp/end"}`,
			map[string]string{"authorization_endpoint": "https://idp/auth", "end_session_endpoint": "https://idp/end"}, ""},
		{"plain http alias", `{"token_endpoint":"http://mtls.idp/token"}`, nil, "token_endpoint"},
		{"not a string", `{"token_endpoint":7}`, nil, "token_endpoint is not a URL"},
		{"not an object", `["https://mtls.idp/token"]`, nil, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := applyMTLSAliases([]byte(strings.Replace(doc, "%s", tt.aliases, 1)), true)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error about %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s: got %v, want %q", k, got[k], v)
				}
			}
		})
	}
}

// TestWithClientCertificate: the caller's client keeps its trust (RootCAs)
// and gains the certificate; the caller's transport is not modified; a
// transport that is not an *http.Transport fails every call.
func TestWithClientCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "mTLS CA")
	cert := ca.Client(t, "gateway").TLS
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no certificate", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").TLS}, ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}
	t.Cleanup(base.CloseIdleConnections)
	caller := &http.Client{Transport: base}
	hc := withClientCertificate(guardClient(caller), &cert)
	t.Cleanup(hc.CloseIdleConnections)
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("with the certificate: got %d, want 200", resp.StatusCode)
	}
	if base.TLSClientConfig.GetClientCertificate != nil || len(base.TLSClientConfig.Certificates) != 0 {
		t.Error("the caller's transport was modified")
	}
	resp, err = caller.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the caller's own client: got %d, want 401 (no certificate)", resp.StatusCode)
	}

	odd := withClientCertificate(&http.Client{Transport: roundTripperFunc(http.DefaultTransport.RoundTrip)}, &cert)
	if _, err := odd.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "cannot present the client certificate") {
		t.Errorf("another transport: got %v, want an error", err)
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
