package aggregate_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/aggregate"
)

// payload is a JSON object of about n bytes: a list of order items.
func payload(n int) string {
	var b strings.Builder
	b.WriteString(`{"count":0,"items":[`)
	for i := 0; b.Len() < n-120; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"sku":"SKU-%06d","name":"Product number %d","total":%d.99,"currency":"EUR","tags":["a","b"]}`, i, i, i, i%500)
	}
	b.WriteString(`]}`)
	return b.String()
}

// benchUpstreams starts three real upstreams answering ~20 KB of JSON.
func benchUpstreams(b *testing.B) []*upstream {
	body := payload(20 << 10)
	var ups []*upstream
	for range 3 {
		// Not newUpstream: recording every request would be measured too.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		}))
		b.Cleanup(srv.Close)
		ups = append(ups, &upstream{Server: srv, base: mustURL(b, srv.URL+"/v1/")})
	}
	return ups
}

// BenchmarkAggregate is one composite GET of three ~20 KB parts over
// loopback, unshaped (parts copied as raw JSON) and with a mobile profile
// that keeps two fields of every item (parts decoded, shaped, encoded).
// Compare with BenchmarkDirectCalls, the same three GETs without merging.
func BenchmarkAggregate(b *testing.B) {
	ups := benchUpstreams(b)
	c := aggregate.Composite{
		Parts: []aggregate.Part{
			{Name: "profile", Upstream: ups[0].base, Path: "me", Bearer: bearer{token: "t"}, Required: true},
			{Name: "orders", Upstream: ups[1].base, Path: "recent?limit={query.limit}", Bearer: bearer{token: "t"}},
			{Name: "news", Upstream: ups[2].base, Path: "news", Timeout: 2e9},
		},
		Profiles: map[string]aggregate.Profile{
			"mobile": {Allow: []string{"profile.count", "orders.items.id", "orders.items.total", "news.items.name"}},
		},
	}
	h := mustNew(b, c, aggregate.Options{Transport: aggregate.NewTransport(0)})
	for _, bc := range []struct{ name, target string }{
		{"unshaped", "/bff/dashboard?limit=5"},
		{"mobile", "/bff/dashboard?limit=5&profile=mobile"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, bc.target, nil))
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkDirectCalls is the baseline: the same three upstream GETs, one
// after another, bodies read and dropped.
func BenchmarkDirectCalls(b *testing.B) {
	ups := benchUpstreams(b)
	client := &http.Client{Transport: aggregate.NewTransport(0)}
	urls := []string{ups[0].base.String() + "me", ups[1].base.String() + "recent?limit=5", ups[2].base.String() + "news"}
	b.ReportAllocs()
	for b.Loop() {
		for _, u := range urls {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("Authorization", "Bearer t")
			req.Header.Set("Accept", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadAll(resp.Body); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	}
}
