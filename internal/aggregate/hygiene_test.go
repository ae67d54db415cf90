package aggregate_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/aggregate"
)

// A template value is decoded once (query, path wildcard) and escaped once
// into the upstream path, so a value that still holds an escape reaches the
// upstream double-encoded: refused when a second decoding would give a dot,
// slash, backslash or NUL, or bytes that are not UTF-8, as on API routes.
func TestTemplateDoubleEncoding(t *testing.T) {
	u := newUpstream(t, jsonBody(`{}`))
	h := mustNew(t, aggregate.Composite{Parts: []aggregate.Part{
		{Name: "item", Upstream: u.base, Path: "items/{query.x}/detail", Required: true},
	}}, aggregate.Options{})

	tests := []struct {
		query    string // raw query of the inbound request
		wantPath string // "" means refused with 400, upstream not called
	}{
		{query: "x=%252e%252e"},
		{query: "x=%252E%252E%252F"},
		{query: "x=%25%32%65%25%32%65"},
		{query: "x=%25%32%45"},
		{query: "x=%25252e%25252e"},
		{query: "x=a%255cb"},
		{query: "x=a%2500b"},
		{query: "x=%25u002e%25u002e"},
		{query: "x=%c0%ae%c0%ae"},
		{query: "x=%e0%80%ae"},
		{query: "x=%c0%af"},
		{query: "x=%ff"},
		{query: "x=%25c0%25ae"},
		{query: "x=%2e%2e"}, // a plain dot segment, as before
		{query: "x=caf%C3%A9", wantPath: "/v1/items/caf%C3%A9/detail"},
		{query: "x=%ef%bc%8f", wantPath: "/v1/items/%EF%BC%8F/detail"}, // fullwidth solidus: valid UTF-8
		{query: "x=%2520", wantPath: "/v1/items/%2520/detail"},         // a literal "%20"
		{query: "x=%25C3%25A9", wantPath: "/v1/items/%25C3%25A9/detail"},
		{query: "x=100%25", wantPath: "/v1/items/100%25/detail"},
		{query: "x=a.b", wantPath: "/v1/items/a.b/detail"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			before := len(u.seen())
			w := get(t, h, dashboard, "/bff/dashboard?"+tt.query, nil)
			reqs := u.seen()[before:]
			if tt.wantPath == "" {
				wantProblem(t, w, http.StatusBadRequest, "{query.x}")
				if len(reqs) != 0 {
					t.Errorf("upstream called with %+v", reqs)
				}
				return
			}
			wantOK(t, w)
			if len(reqs) != 1 {
				t.Fatalf("upstream called %d times, want 1", len(reqs))
			}
			if reqs[0].Path != tt.wantPath {
				t.Errorf("upstream path = %q, want %q", reqs[0].Path, tt.wantPath)
			}
		})
	}
}

// Path wildcards and claims go through the same check; query values after
// the "?" are parameter values, not path, and pass as they are.
func TestTemplateDoubleEncodingSources(t *testing.T) {
	u := newUpstream(t, jsonBody(`{}`))
	pattern := "GET /bff/users/{id}/dashboard"
	var claims map[string]any
	h := mustNew(t, aggregate.Composite{Path: pattern, Parts: []aggregate.Part{
		{Name: "user", Upstream: u.base, Path: "users/{path.id}/{claims.tenant}?q={query.q}", Required: true},
	}}, aggregate.Options{Claims: func(*http.Request) map[string]any { return claims }})

	claims = map[string]any{"tenant": "t1"}
	wantProblem(t, get(t, h, pattern, "/bff/users/%252e%252e/dashboard?q=a", nil), http.StatusBadRequest, "{path.id}")
	wantProblem(t, get(t, h, pattern, "/bff/users/%c0%ae%c0%ae/dashboard?q=a", nil), http.StatusBadRequest, "{path.id}")
	claims = map[string]any{"tenant": "%2e%2e"}
	wantProblem(t, get(t, h, pattern, "/bff/users/u1/dashboard?q=a", nil), http.StatusBadRequest, "{claims.tenant}")
	if n := len(u.seen()); n != 0 {
		t.Fatalf("upstream called %d times, want 0", n)
	}

	claims = map[string]any{"tenant": "t1"}
	wantOK(t, get(t, h, pattern, "/bff/users/u1/dashboard?q=%252e%252e", nil))
	got := u.seen()[0]
	if want := "/v1/users/u1/t1"; got.Path != want {
		t.Errorf("upstream path = %q, want %q", got.Path, want)
	}
	if q, want := got.Query.Get("q"), "%2e%2e"; q != want {
		t.Errorf("upstream query q = %q, want %q", q, want)
	}
}

func TestNewRefusesDoubleEncodedTemplate(t *testing.T) {
	u := newUpstream(t, jsonBody(`{}`))
	for _, path := range []string{"items/%252e%252e/x", "items/%252F", "items/%c0%ae%c0%ae/x", "items/%25%32%65"} {
		_, err := aggregate.New(aggregate.Composite{Parts: []aggregate.Part{
			{Name: "item", Upstream: u.base, Path: path},
		}}, aggregate.Options{})
		if err == nil || !strings.Contains(err.Error(), "path") {
			t.Errorf("New with path %q: err = %v, want one about the path", path, err)
		}
	}
}
