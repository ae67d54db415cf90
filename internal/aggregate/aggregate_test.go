package aggregate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cloakroom/cloakroom/internal/aggregate"
	"github.com/cloakroom/cloakroom/internal/httpx"
)

const dashboard = "GET /bff/dashboard"

func TestNames(t *testing.T) {
	// The spec's spelling of the profile selectors.
	if aggregate.HeaderClientProfile != "X-Client-Profile" {
		t.Errorf("HeaderClientProfile = %q", aggregate.HeaderClientProfile)
	}
	if aggregate.QueryProfile != "profile" {
		t.Errorf("QueryProfile = %q", aggregate.QueryProfile)
	}
}

func TestMergeKeepsPartsVerbatim(t *testing.T) {
	// Odd spacing and a number beyond float64 precision survive only if
	// the unshaped answer copies each part as it came.
	profile := `{"name" :  "Alice",  "id":12345678901234567890123}`
	orders := "[1, 2 ,3]\n"
	a := newUpstream(t, jsonBody(profile))
	b := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.orders+json; charset=utf-8")
		w.Write([]byte(orders))
	})
	h := mustNew(t, aggregate.Composite{Parts: []aggregate.Part{
		{Name: "profile", Upstream: a.base, Path: "me", Required: true},
		{Name: "orders", Upstream: b.base, Path: "recent?limit=5"},
	}}, aggregate.Options{})

	w := get(t, h, dashboard, "/bff/dashboard", nil)
	wantOK(t, w)
	if got, want := w.Body.String(), `{"profile":`+profile+`,"orders":`+orders+`}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	if got := a.seen()[0].Path; got != "/v1/me" {
		t.Errorf("profile upstream path = %q, want /v1/me", got)
	}
	if got, want := b.seen()[0].Query, (url.Values{"limit": {"5"}}); !cmp.Equal(got, want) {
		t.Errorf("orders upstream query = %v, want %v", got, want)
	}
}

// TestPartsRunInParallel proves concurrency by structure: every upstream
// waits until all three have been called. Run one after another, the first
// would wait alone until its barrier times out and answer 500.
func TestPartsRunInParallel(t *testing.T) {
	var arrived atomic.Int32
	all := make(chan struct{})
	barrier := func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == 3 {
			close(all)
		}
		select {
		case <-all:
			jsonBody(`{"ok":true}`)(w, r)
		case <-time.After(5 * time.Second):
			http.Error(w, "barrier never filled", http.StatusInternalServerError)
		}
	}
	var parts []aggregate.Part
	for _, name := range []string{"a", "b", "c"} {
		u := newUpstream(t, barrier)
		parts = append(parts, aggregate.Part{Name: name, Upstream: u.base, Path: name, Required: true})
	}
	h := mustNew(t, aggregate.Composite{Parts: parts}, aggregate.Options{})

	w := get(t, h, dashboard, "/bff/dashboard", nil)
	wantOK(t, w)
	jsonEqual(t, w.Body.Bytes(), `{"a":{"ok":true},"b":{"ok":true},"c":{"ok":true}}`)
}

func TestOptionalPartFailures(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		upstream   string // instead of a live upstream
		timeout    time.Duration
		wantStatus int
	}{
		{name: "500", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "secret-upstream-detail", http.StatusInternalServerError)
		}, wantStatus: 500},
		{name: "404", handler: http.NotFound, wantStatus: 404},
		{name: "401", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) }, wantStatus: 401},
		{name: "403", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) }, wantStatus: 403},
		{name: "redirect not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, wantStatus: 302},
		{name: "timeout", handler: hang(t), timeout: 50 * time.Millisecond, wantStatus: 504},
		{name: "bad JSON", handler: jsonBody(`{"secret-upstream-detail":`), wantStatus: 502},
		{name: "empty body", handler: jsonBody(""), wantStatus: 502},
		{name: "HTML", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(`{"looks":"like json"}`))
		}, wantStatus: 502},
		{name: "too large", handler: jsonBody(`{"big":"` + strings.Repeat("x", 2000) + `"}`), wantStatus: 502},
		{name: "unreachable", upstream: closed.URL + "/v1/", wantStatus: 502},
	}
	good := newUpstream(t, jsonBody(`{"name":"Alice"}`))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := mustURL(t, tt.upstream+"")
			if tt.handler != nil {
				base = newUpstream(t, tt.handler).base
			}
			h := mustNew(t, aggregate.Composite{Parts: []aggregate.Part{
				{Name: "profile", Upstream: good.base, Path: "me", Required: true},
				{Name: "orders", Upstream: base, Path: "recent", Timeout: tt.timeout},
			}}, aggregate.Options{MaxPartBytes: 1024})

			w := get(t, h, dashboard, "/bff/dashboard", nil)
			wantOK(t, w)
			if strings.Contains(w.Body.String(), "secret-upstream-detail") {
				t.Errorf("upstream body echoed: %s", w.Body)
			}
			var got struct {
				Profile map[string]any `json:"profile"`
				Orders  any            `json:"orders"`
				Meta    struct {
					Errors map[string]struct {
						Status int    `json:"status"`
						Error  string `json:"error"`
					} `json:"errors"`
				} `json:"_meta"`
			}
			decode(t, w.Body.Bytes(), &got)
			if got.Profile["name"] != "Alice" || got.Orders != nil {
				t.Errorf("profile = %v, orders = %v; want Alice and null", got.Profile, got.Orders)
			}
			e, ok := got.Meta.Errors["orders"]
			if !ok || e.Status != tt.wantStatus || e.Error == "" || len(got.Meta.Errors) != 1 {
				t.Errorf("_meta.errors = %+v, want only orders with status %d and a reason", got.Meta.Errors, tt.wantStatus)
			}
		})
	}
}

func TestRequiredPartFailures(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		timeout  time.Duration
		wantCode int
	}{
		{name: "500", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "secret-upstream-detail", http.StatusInternalServerError)
		}, wantCode: 502},
		{name: "404", handler: http.NotFound, wantCode: 502},
		{name: "bad JSON", handler: jsonBody(`{"secret-upstream-detail"`), wantCode: 502},
		{name: "text", handler: func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret-upstream-detail")) }, wantCode: 502},
		{name: "timeout", handler: hang(t), timeout: 50 * time.Millisecond, wantCode: 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := newUpstream(t, jsonBody(`{"n":1}`))
			bad := newUpstream(t, tt.handler)
			h := mustNew(t, aggregate.Composite{Parts: []aggregate.Part{
				{Name: "orders", Upstream: other.base, Path: "recent"},
				{Name: "profile", Upstream: bad.base, Path: "me", Required: true, Timeout: tt.timeout},
			}}, aggregate.Options{})

			w := get(t, h, dashboard, "/bff/dashboard", nil)
			wantProblem(t, w, tt.wantCode, `"profile"`)
			if strings.Contains(w.Body.String(), "secret-upstream-detail") {
				t.Errorf("upstream body echoed: %s", w.Body)
			}
		})
	}
}

func TestOverallDeadline(t *testing.T) {
	fast := newUpstream(t, jsonBody(`{"n":1}`))
	slow := newUpstream(t, hang(t))
	for _, required := range []bool{false, true} {
		h := mustNew(t, aggregate.Composite{
			Deadline: 100 * time.Millisecond,
			Parts: []aggregate.Part{
				{Name: "fast", Upstream: fast.base, Path: "x", Required: true},
				// No timeout of its own: only the deadline stops it.
				{Name: "slow", Upstream: slow.base, Path: "x", Required: required},
			},
		}, aggregate.Options{})
		start := time.Now()
		w := get(t, h, dashboard, "/bff/dashboard", nil)
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("required=%v: answered after %v; the deadline did not hold", required, el)
		}
		if required {
			wantProblem(t, w, http.StatusGatewayTimeout, `"slow"`)
			continue
		}
		wantOK(t, w)
		jsonEqual(t, w.Body.Bytes(), `{"fast":{"n":1},"slow":null,"_meta":{"errors":{"slow":{"status":504,"error":"timed out"}}}}`)
	}
}

// TestTemplateEscaping attacks the templates with hostile values and checks
// what the upstream received: the path never leaves the part's segment and
// no parameter is added.
func TestTemplateEscaping(t *testing.T) {
	u := newUpstream(t, jsonBody(`{}`))
	h := mustNew(t, aggregate.Composite{Parts: []aggregate.Part{
		{Name: "item", Upstream: u.base, Path: "items/{query.x}/detail?q={query.x}&limit=5", Required: true},
	}}, aggregate.Options{})

	tests := []struct {
		query    string // raw query of the inbound request
		wantPath string // "" means refused with 400, upstream not called
		wantQ    string
	}{
		{query: "x=plain", wantPath: "/v1/items/plain/detail", wantQ: "plain"},
		{query: "x=../../admin"},
		{query: "x=..%2F..%2Fadmin"},
		{query: "x=%2e%2e"},
		{query: "x=."},
		{query: "x=a%5Cb"},
		{query: "x=a/../../b"},
		{query: "x=a%2Fb", wantPath: "/v1/items/a%2Fb/detail", wantQ: "a/b"},
		{query: "x=a/b", wantPath: "/v1/items/a%2Fb/detail", wantQ: "a/b"},
		{query: "x=a%252Fb"}, // the value "a%2Fb" would be sent as a%252Fb: a slash to a second decoding
		{query: "x=a&b=c", wantPath: "/v1/items/a/detail", wantQ: "a"},
		{query: "x=a%26b%3Dc", wantPath: "/v1/items/a&b=c/detail", wantQ: "a&b=c"},
		{query: "x=a#b", wantPath: "/v1/items/a%23b/detail", wantQ: "a#b"},
		{query: "x=a%23b", wantPath: "/v1/items/a%23b/detail", wantQ: "a#b"},
		{query: "x=%3Fadmin=1", wantPath: "/v1/items/%3Fadmin=1/detail", wantQ: "?admin=1"},
		{query: "x=http://evil.example/", wantPath: "/v1/items/http:%2F%2Fevil.example%2F/detail", wantQ: "http://evil.example/"},
		{query: "x=@evil.example", wantPath: "/v1/items/@evil.example/detail", wantQ: "@evil.example"},
		{query: "x=a+b%20c", wantPath: "/v1/items/a%20b%20c/detail", wantQ: "a b c"},
		{query: "x=%00", wantPath: "/v1/items/%00/detail", wantQ: "\x00"},
		{query: "x=...", wantPath: "/v1/items/.../detail", wantQ: "..."},
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
			if want := (url.Values{"q": {tt.wantQ}, "limit": {"5"}}); !cmp.Equal(reqs[0].Query, want) {
				t.Errorf("upstream query = %v, want %v", reqs[0].Query, want)
			}
		})
	}
}

func TestClaimEscaping(t *testing.T) {
	u := newUpstream(t, jsonBody(`{}`))
	var claims map[string]any
	h := mustNew(t, aggregate.Composite{Parts: []aggregate.Part{
		{Name: "orders", Upstream: u.base, Path: "users/{claims.sub}/orders?who={claims.email}&n={claims.n}", Required: true},
	}}, aggregate.Options{Claims: func(*http.Request) map[string]any { return claims }})

	claims = map[string]any{"sub": "auth0|a/b?c=d#e", "email": "x@y.example&admin=true", "n": 42.0}
	w := get(t, h, dashboard, "/bff/dashboard", nil)
	wantOK(t, w)
	got := u.seen()[0]
	if want := "/v1/users/auth0%7Ca%2Fb%3Fc=d%23e/orders"; got.Path != want {
		t.Errorf("upstream path = %q, want %q", got.Path, want)
	}
	if want := (url.Values{"who": {"x@y.example&admin=true"}, "n": {"42"}}); !cmp.Equal(got.Query, want) {
		t.Errorf("upstream query = %v, want %v", got.Query, want)
	}

	claims = map[string]any{"sub": "../admin", "email": "e", "n": 1.0}
	wantProblem(t, get(t, h, dashboard, "/bff/dashboard", nil), http.StatusBadRequest, "{claims.sub}")

	claims = map[string]any{"sub": "s", "n": 1.0}
	wantProblem(t, get(t, h, dashboard, "/bff/dashboard", nil), http.StatusBadRequest, "missing claim email")

	claims = map[string]any{"sub": []any{"a"}, "email": "e", "n": 1.0}
	wantProblem(t, get(t, h, dashboard, "/bff/dashboard", nil), http.StatusBadRequest, "missing claim sub")

	// Anonymous: no claims at all is "not logged in", as the Bearer of a
	// user part would say.
	claims = nil
	w = get(t, h, dashboard, "/bff/dashboard", nil)
	if w.Code != http.StatusUnauthorized || w.Body.Len() != 0 {
		t.Errorf("anonymous: status %d body %q, want 401 empty", w.Code, w.Body)
	}
	if n := len(u.seen()); n != 1 {
		t.Errorf("upstream called %d times, want 1", n)
	}
}

func TestMissingQueryParameter(t *testing.T) {
	u := newUpstream(t, jsonBody(`{}`))
	c := aggregate.Composite{Parts: []aggregate.Part{
		{Name: "search", Upstream: u.base, Path: "search?q={query.q}", Required: true},
		{Name: "other", Upstream: u.base, Path: "other"},
	}}
	h := mustNew(t, c, aggregate.Options{})
	wantProblem(t, get(t, h, dashboard, "/bff/dashboard", nil), http.StatusBadRequest, "missing query parameter q")
	wantProblem(t, get(t, h, dashboard, "/bff/dashboard?q=", nil), http.StatusBadRequest, "missing query parameter q")
	if n := len(u.seen()); n != 0 {
		t.Errorf("upstream called %d times before the 400, want 0", n)
	}

	c.Parts[0].Required = false
	h = mustNew(t, c, aggregate.Options{})
	w := get(t, h, dashboard, "/bff/dashboard", nil)
	wantOK(t, w)
	jsonEqual(t, w.Body.Bytes(), `{"search":null,"other":{},"_meta":{"errors":{"search":{"status":400,"error":"missing query parameter q"}}}}`)
}

func TestPathValues(t *testing.T) {
	u := newUpstream(t, jsonBody(`{}`))
	pattern := "GET /bff/users/{id}/dashboard"
	h := mustNew(t, aggregate.Composite{Path: pattern, Parts: []aggregate.Part{
		{Name: "user", Upstream: u.base, Path: "users/{path.id}", Required: true},
	}}, aggregate.Options{})

	wantOK(t, get(t, h, pattern, "/bff/users/a%2Fb/dashboard", nil))
	if got, want := u.seen()[0].Path, "/v1/users/a%2Fb"; got != want {
		t.Errorf("upstream path = %q, want %q", got, want)
	}
	wantProblem(t, get(t, h, pattern, "/bff/users/..%2Fadmin/dashboard", nil), http.StatusBadRequest, "{path.id}")

	_, err := aggregate.New(aggregate.Composite{Path: pattern, Parts: []aggregate.Part{
		{Name: "user", Upstream: u.base, Path: "users/{path.uid}"},
	}}, aggregate.Options{})
	if err == nil || !strings.Contains(err.Error(), "{uid}") {
		t.Errorf("New with an unknown wildcard: err = %v, want one naming {uid}", err)
	}
}

func TestUpstreamRequest(t *testing.T) {
	u := newUpstream(t, jsonBody(`{}`))
	anon := newUpstream(t, jsonBody(`{}`))
	h := mustNew(t, aggregate.Composite{Parts: []aggregate.Part{
		{Name: "user", Upstream: u.base, Path: "me", Bearer: bearer{token: "user-token"}, Required: true},
		{Name: "public", Upstream: anon.base, Path: "news", Bearer: bearer{}},
	}}, aggregate.Options{})

	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	mux := http.NewServeMux()
	mux.Handle(dashboard, h)
	r := httptest.NewRequest(http.MethodGet, "/bff/dashboard", nil)
	r.Header.Set("Cookie", "__Host-Http-cloakroom=ticket; other=1")
	r.Header.Set("Authorization", "Bearer browser-token")
	r.Header.Set("X-CSRF", "1")
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	r.Header.Set("X-Custom", "nope")
	r.Header.Set("Traceparent", trace)
	r.Header.Set("Tracestate", "vendor=x")
	r = r.WithContext(httpx.WithInfo(r.Context(), &httpx.Info{RequestID: "req-123"}))
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	wantOK(t, w)

	for _, c := range []struct {
		name, auth string
		got        http.Header
	}{
		{"user", "Bearer user-token", u.seen()[0].Header},
		{"public", "", anon.seen()[0].Header},
	} {
		c.got.Del("Accept-Encoding") // the transport's own
		c.got.Del("User-Agent")
		want := http.Header{
			"Accept":       {"application/json"},
			"X-Request-Id": {"req-123"},
			"Traceparent":  {trace},
		}
		if c.auth != "" {
			want.Set("Authorization", c.auth)
		}
		if d := cmp.Diff(want, c.got); d != "" {
			t.Errorf("%s: upstream headers differ (-want +got):\n%s", c.name, d)
		}
	}

	// Without a request id in the context the inbound one is used; a
	// malformed traceparent is dropped.
	r = httptest.NewRequest(http.MethodGet, "/bff/dashboard", nil)
	r.Header.Set("X-Request-Id", "abc-1")
	r.Header.Set("Traceparent", "00-xyz")
	mux.ServeHTTP(httptest.NewRecorder(), r)
	got := u.seen()[1].Header
	if got.Get("X-Request-Id") != "abc-1" || got.Get("Traceparent") != "" {
		t.Errorf("upstream headers = %v, want X-Request-Id abc-1 and no Traceparent", got)
	}
}

func TestBearerErrors(t *testing.T) {
	u := newUpstream(t, jsonBody(`{"ok":true}`))
	tests := []struct {
		name     string
		err      error
		required bool
		check    func(t *testing.T, w *httptest.ResponseRecorder)
	}{
		{name: "required 401 empty", err: errNoUser, required: true, check: func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Code != http.StatusUnauthorized || w.Body.Len() != 0 {
				t.Errorf("status %d body %q, want 401 empty", w.Code, w.Body)
			}
		}},
		{name: "required 403 problem", err: errForbidden, required: true, check: func(t *testing.T, w *httptest.ResponseRecorder) {
			wantProblem(t, w, http.StatusForbidden, "missing scope orders.read")
		}},
		{name: "optional 401", err: errNoUser, check: func(t *testing.T, w *httptest.ResponseRecorder) {
			wantOK(t, w)
			jsonEqual(t, w.Body.Bytes(), `{"public":{"ok":true},"orders":null,"_meta":{"errors":{"orders":{"status":401,"error":"not logged in"}}}}`)
		}},
		{name: "optional 403", err: errForbidden, check: func(t *testing.T, w *httptest.ResponseRecorder) {
			wantOK(t, w)
			jsonEqual(t, w.Body.Bytes(), `{"public":{"ok":true},"orders":null,"_meta":{"errors":{"orders":{"status":403,"error":"missing scope orders.read"}}}}`)
		}},
		{name: "required other error", err: context.Canceled, required: true, check: func(t *testing.T, w *httptest.ResponseRecorder) {
			wantProblem(t, w, http.StatusInternalServerError, "internal error")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orders := newUpstream(t, jsonBody(`{}`))
			h := mustNew(t, aggregate.Composite{Parts: []aggregate.Part{
				{Name: "public", Upstream: u.base, Path: "news"},
				{Name: "orders", Upstream: orders.base, Path: "recent", Bearer: bearer{err: tt.err}, Required: tt.required},
			}}, aggregate.Options{})
			tt.check(t, get(t, h, dashboard, "/bff/dashboard", nil))
			if n := len(orders.seen()); n != 0 {
				t.Errorf("upstream without a token called %d times", n)
			}
		})
	}
}

func TestMethods(t *testing.T) {
	u := newUpstream(t, jsonBody(`{"a":1}`))
	h := mustNew(t, aggregate.Composite{Parts: []aggregate.Part{{Name: "a", Upstream: u.base, Path: "a"}}}, aggregate.Options{})

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/bff/dashboard", nil))
	wantProblem(t, w, http.StatusMethodNotAllowed, "")
	if got := w.Header().Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow = %q, want GET, HEAD", got)
	}

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodHead, "/bff/dashboard", nil))
	wantOK(t, w)
	if w.Body.Len() != 0 || w.Header().Get("Content-Length") != "13" {
		t.Errorf("HEAD: body %q, Content-Length %q; want none and 13", w.Body, w.Header().Get("Content-Length"))
	}
}

func TestDependentParts(t *testing.T) {
	profile := newUpstream(t, jsonBody(`{"accountId":"acc/42","teams":[{"id":7}]}`))
	accounts := newUpstream(t, jsonBody(`{"balance":10}`))
	c := aggregate.Composite{Parts: []aggregate.Part{
		{Name: "account", Upstream: accounts.base, Path: "accounts/{parts.profile.accountId}?team={parts.profile.teams.0.id}"},
		{Name: "profile", Upstream: profile.base, Path: "me"},
	}}
	h := mustNew(t, c, aggregate.Options{})
	w := get(t, h, dashboard, "/bff/dashboard", nil)
	wantOK(t, w)
	jsonEqual(t, w.Body.Bytes(), `{"account":{"balance":10},"profile":{"accountId":"acc/42","teams":[{"id":7}]}}`)
	got := accounts.seen()[0]
	if got.Path != "/v1/accounts/acc%2F42" || got.Query.Get("team") != "7" {
		t.Errorf("dependent part called %q ? %v", got.Path, got.Query)
	}

	// A failed dependency fails the dependent part without calling it.
	failing := newUpstream(t, http.NotFound)
	c.Parts[1].Upstream = failing.base
	before := len(accounts.seen())
	w = get(t, mustNew(t, c, aggregate.Options{}), dashboard, "/bff/dashboard", nil)
	wantOK(t, w)
	jsonEqual(t, w.Body.Bytes(), `{"account":null,"profile":null,"_meta":{"errors":{
		"account":{"status":502,"error":"depends on failed part profile"},
		"profile":{"status":404,"error":"upstream answered 404"}}}}`)
	if n := len(accounts.seen()) - before; n != 0 {
		t.Errorf("dependent part called %d times", n)
	}
}

func TestNewRefuses(t *testing.T) {
	base := mustURL(t, "http://api.internal/v1/")
	part := func(name, path string) aggregate.Part {
		return aggregate.Part{Name: name, Upstream: base, Path: path}
	}
	tests := []struct {
		name string
		c    aggregate.Composite
		o    aggregate.Options
		want string
	}{
		{"no parts", aggregate.Composite{}, aggregate.Options{}, "at least one part"},
		{"no name", aggregate.Composite{Parts: []aggregate.Part{part("", "x")}}, aggregate.Options{}, "no name"},
		{"dot in name", aggregate.Composite{Parts: []aggregate.Part{part("a.b", "x")}}, aggregate.Options{}, "must not contain"},
		{"reserved name", aggregate.Composite{Parts: []aggregate.Part{part("_meta", "x")}}, aggregate.Options{}, "reserved"},
		{"duplicate", aggregate.Composite{Parts: []aggregate.Part{part("a", "x"), part("a", "y")}}, aggregate.Options{}, "twice"},
		{"no upstream", aggregate.Composite{Parts: []aggregate.Part{{Name: "a", Path: "x"}}}, aggregate.Options{}, "no upstream"},
		{"relative upstream", aggregate.Composite{Parts: []aggregate.Part{{Name: "a", Upstream: mustURL(t, "/v1/"), Path: "x"}}}, aggregate.Options{}, "absolute"},
		{"absolute path", aggregate.Composite{Parts: []aggregate.Part{part("a", "/admin")}}, aggregate.Options{}, "leading"},
		{"scheme-relative path", aggregate.Composite{Parts: []aggregate.Part{part("a", "//evil/x")}}, aggregate.Options{}, "leading"},
		{"dot segments", aggregate.Composite{Parts: []aggregate.Part{part("a", "x/../../admin")}}, aggregate.Options{}, "dot segments"},
		{"encoded dot segments", aggregate.Composite{Parts: []aggregate.Part{part("a", "%2e%2e/admin")}}, aggregate.Options{}, "dot segments"},
		{"fragment", aggregate.Composite{Parts: []aggregate.Part{part("a", "x#y")}}, aggregate.Options{}, "fragment"},
		{"space", aggregate.Composite{Parts: []aggregate.Part{part("a", "x y")}}, aggregate.Options{}, "percent-encoded"},
		{"bad escape", aggregate.Composite{Parts: []aggregate.Part{part("a", "x%zz")}}, aggregate.Options{}, "percent"},
		{"bad query", aggregate.Composite{Parts: []aggregate.Part{part("a", "x?a=%zz")}}, aggregate.Options{}, "query"},
		{"unclosed", aggregate.Composite{Parts: []aggregate.Part{part("a", "x/{query.q")}}, aggregate.Options{}, "unclosed"},
		{"unbalanced", aggregate.Composite{Parts: []aggregate.Part{part("a", "x/}")}}, aggregate.Options{}, "unbalanced"},
		{"empty placeholder", aggregate.Composite{Parts: []aggregate.Part{part("a", "x/{query.}")}}, aggregate.Options{}, "placeholder"},
		{"unknown source", aggregate.Composite{Parts: []aggregate.Part{part("a", "x/{header.h}")}}, aggregate.Options{}, "unknown source"},
		{"claims without Claims", aggregate.Composite{Parts: []aggregate.Part{part("a", "{claims.sub}")}}, aggregate.Options{}, "Options.Claims"},
		{"unknown part", aggregate.Composite{Parts: []aggregate.Part{part("a", "{parts.b.id}")}}, aggregate.Options{}, `no part "b"`},
		{"self", aggregate.Composite{Parts: []aggregate.Part{part("a", "{parts.a.id}")}}, aggregate.Options{}, "itself"},
		{"cycle", aggregate.Composite{Parts: []aggregate.Part{part("a", "{parts.b.id}"), part("b", "{parts.c.id}"), part("c", "{parts.a.id}")}}, aggregate.Options{}, "a -> b -> c -> a"},
		{"negative deadline", aggregate.Composite{Parts: []aggregate.Part{part("a", "x")}, Deadline: -1}, aggregate.Options{}, "negative"},
		{"unknown default profile", aggregate.Composite{Parts: []aggregate.Part{part("a", "x")}, DefaultProfile: "web"}, aggregate.Options{}, `"web"`},
		{"profile names unknown part", aggregate.Composite{Parts: []aggregate.Part{part("a", "x")},
			Profiles: map[string]aggregate.Profile{"m": {Allow: []string{"b.name"}}}}, aggregate.Options{}, `no part "b"`},
		{"profile empty segment", aggregate.Composite{Parts: []aggregate.Part{part("a", "x")},
			Profiles: map[string]aggregate.Profile{"m": {Deny: []string{"a..b"}}}}, aggregate.Options{}, "empty path segment"},
		{"map to _meta", aggregate.Composite{Parts: []aggregate.Part{part("a", "x")},
			Profiles: map[string]aggregate.Profile{"m": {Map: map[string]string{"a.x": "_meta.x"}}}}, aggregate.Options{}, "reserved"},
		{"overlapping targets", aggregate.Composite{Parts: []aggregate.Part{part("a", "x")},
			Profiles: map[string]aggregate.Profile{"m": {Map: map[string]string{"a.x": "t", "a.y": "t.y"}}}}, aggregate.Options{}, "overlaps"},
		{"map source not allowed", aggregate.Composite{Parts: []aggregate.Part{part("a", "x")},
			Profiles: map[string]aggregate.Profile{"m": {Allow: []string{"a.y"}, Map: map[string]string{"a.x": "x"}}}}, aggregate.Options{}, "not in allow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := aggregate.New(tt.c, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
