package aggregate_test

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloakroom/cloakroom/internal/aggregate"
	"github.com/cloakroom/cloakroom/internal/tlstest"
)

// TestPartTransport: a part with a Transport of its own calls through it
// (here: the one that trusts the upstream's CA and presents the client
// certificate the upstream requires), the other parts through the
// composite's.
func TestPartTransport(t *testing.T) {
	ca := tlstest.NewCA(t, "Parts CA")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"client":"`+r.TLS.PeerCertificates[0].Subject.CommonName+`"}`)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool,
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the plain part's handshake fails on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	withCert := aggregate.NewTransport(0)
	withCert.TLSClientConfig = &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{ca.Client(t, "gateway").TLS}}
	t.Cleanup(withCert.CloseIdleConnections)
	base := mustURL(t, srv.URL+"/v1/")

	h := mustNew(t, aggregate.Composite{Parts: []aggregate.Part{
		{Name: "mtls", Upstream: base, Transport: withCert},
		{Name: "plain", Upstream: base},
	}}, aggregate.Options{})
	w := get(t, h, dashboard, "/bff/dashboard", nil)
	wantOK(t, w)
	jsonEqual(t, w.Body.Bytes(), `{"mtls":{"client":"gateway"},"plain":null,"_meta":{"errors":{"plain":{"status":502,"error":"upstream unavailable"}}}}`)
}
