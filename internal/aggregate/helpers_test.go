package aggregate_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cloakroom/cloakroom/internal/aggregate"
	"github.com/cloakroom/cloakroom/internal/httpx"
)

// seen is what an upstream received.
type seen struct {
	Path   string // r.URL.EscapedPath()
	Query  url.Values
	Header http.Header
}

// upstream is a real HTTP server that records every request.
type upstream struct {
	*httptest.Server
	base *url.URL // URL + "/v1/"
	mu   sync.Mutex
	reqs []seen
}

func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{Path: r.URL.EscapedPath(), Query: r.URL.Query(), Header: r.Header.Clone()})
		u.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(u.Close)
	u.base = mustURL(t, u.URL+"/v1/")
	return u
}

func (u *upstream) seen() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

// jsonBody answers body as application/json.
func jsonBody(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

// hang answers only when the caller gives up or the test ends.
func hang(t testing.TB) http.HandlerFunc {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustNew(t testing.TB, c aggregate.Composite, o aggregate.Options) http.Handler {
	t.Helper()
	h, err := aggregate.New(c, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// get calls h, registered under pattern, with target.
func get(t testing.TB, h http.Handler, pattern, target string, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(pattern, h)
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range hdr {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

// jsonEqual compares JSON documents by value.
func jsonEqual(t testing.TB, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	if d := cmp.Diff(w, g); d != "" {
		t.Errorf("answer differs (-want +got):\n%s\ngot %s", d, got)
	}
}

// wantOK checks a 200 composite answer and its headers.
func wantOK(t testing.TB, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	for k, v := range map[string]string{
		"Content-Type":           "application/json",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

// wantProblem checks a problem+json answer with status code whose detail
// contains detail.
func wantProblem(t testing.TB, w *httptest.ResponseRecorder, code int, detail string) {
	t.Helper()
	if w.Code != code {
		t.Fatalf("status = %d, want %d; body %s", w.Code, code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem is not JSON: %v: %s", err, w.Body)
	}
	if p.Status != code || !strings.Contains(p.Detail, detail) {
		t.Errorf("problem = %+v, want status %d and detail containing %q", p, code, detail)
	}
}

// bearer is a fixed token or error.
type bearer struct {
	token string
	err   error
}

func (b bearer) Token(*http.Request) (string, error) { return b.token, b.err }

var (
	errNoUser    = httpx.Error{Code: http.StatusUnauthorized, Msg: "not logged in", Empty: true}
	errForbidden = httpx.Error{Code: http.StatusForbidden, Msg: "missing scope orders.read"}
)

func decode(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, b)
	}
}
