package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/server"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	clk := &clock{}
	ln, public := listenLocal(t)
	p, srv := demoProvider(t, public, func(o *idp.Options) { o.Now = clk.Now; o.AccessTokenTTL = time.Minute })
	up := newUpstream(t, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: up.URL, Token: "user"}}
	g := startGateway(t, ln, cfg, server.Options{TracerProvider: tp, Now: clk.Now})
	b := newBrowser(t)
	(&env{g: g, idp: p}).login(t, b, "alice")
	clk.Advance(2 * time.Minute) // the next call refreshes first
	exp.Reset()
	if r := b.get(g.URL+"/api/orders/x?q=1", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Fatalf("API: %d", r.StatusCode)
	}
	spans := exp.GetSpans()
	var server, client, refresh *tracetest.SpanStub
	for i := range spans {
		s := &spans[i]
		switch {
		case s.SpanKind.String() == "server":
			server = s
		case s.SpanKind.String() == "client":
			client = s
		case s.Name == "cloakroom.token.refresh":
			refresh = s
		}
	}
	if server == nil || client == nil || refresh == nil {
		names := []string{}
		for _, s := range spans {
			names = append(names, s.Name+"/"+s.SpanKind.String())
		}
		t.Fatalf("spans %v, want a server span, an upstream client span and a refresh span", names)
	}
	if client.Parent.SpanID() != server.SpanContext.SpanID() || refresh.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Error("upstream and refresh spans are not children of the request span")
	}
	reqs := up.Requests()
	tp0 := reqs[len(reqs)-1].Header.Get("Traceparent")
	if !strings.Contains(tp0, server.SpanContext.TraceID().String()) {
		t.Errorf("upstream traceparent %q does not carry trace %s", tp0, server.SpanContext.TraceID())
	}
	// Nothing secret in any attribute.
	var dump strings.Builder
	for _, s := range exp.GetSpans() {
		for _, a := range s.Attributes {
			fmt.Fprintf(&dump, "%s=%s\n", a.Key, a.Value.String())
		}
	}
	secrets := append(p.IssuedTokens(), "web-secret")
	for _, c := range b.jar.Cookies(mustURL(g.URL)) {
		secrets = append(secrets, c.Value)
	}
	for _, s := range secrets {
		if strings.Contains(dump.String(), s) {
			t.Fatalf("a secret in span attributes:\n%s", dump.String())
		}
	}
	// The inbound query (at the callback: the authorization code) is not
	// recorded; the upstream call's URL is the API's own business.
	for _, a := range server.Attributes {
		if strings.Contains(a.Value.String(), "q=1") {
			t.Errorf("inbound query recorded: %s=%s", a.Key, a.Value.String())
		}
	}
}
