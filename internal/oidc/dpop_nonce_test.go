package oidc_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
)

func TestUseDPoPNonce(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	const n = "eyJ7S_zG.eyJH0-Z.HX4w-7v"
	tests := []struct {
		name   string
		status int
		h      http.Header
		body   string
		want   string // "" for no challenge
	}{
		{"token endpoint (RFC 9449 §8)", 400, hdr("DPoP-Nonce", n, "Content-Type", "application/json"),
			`{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}`, n},
		{"token endpoint, header in another case", 400, http.Header{"Dpop-Nonce": {n}}, `{"error":"use_dpop_nonce"}`, n},
		{"token endpoint without the nonce header", 400, hdr(), `{"error":"use_dpop_nonce"}`, ""},
		{"token endpoint, another error", 400, hdr("DPoP-Nonce", n), `{"error":"invalid_dpop_proof"}`, ""},
		{"token endpoint, body not JSON", 400, hdr("DPoP-Nonce", n), `use_dpop_nonce`, ""},
		{"resource server (RFC 9449 §9)", 401, hdr("DPoP-Nonce", n, "WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`), "", n},
		{"resource server, several challenges", 401, hdr("DPoP-Nonce", n, "WWW-Authenticate", `Bearer realm="api", DPoP algs="ES256 PS256", error="use_dpop_nonce"`), "", n},
		{"resource server, a token68 first", 401, hdr("DPoP-Nonce", n, "WWW-Authenticate", `Negotiate a87421/+000==, DPoP error="use_dpop_nonce"`), "", n},
		{"resource server, challenges on two lines", 401, hdr("DPoP-Nonce", n, "WWW-Authenticate", `Bearer realm="api"`, "WWW-Authenticate", `dpop ERROR=use_dpop_nonce`), "", n},
		{"resource server, quoted pair", 401, hdr("DPoP-Nonce", n, "WWW-Authenticate", `DPoP realm="a \"b\", c", error="use_dpop_nonce"`), "", n},
		{"resource server, the error of another scheme", 401, hdr("DPoP-Nonce", n, "WWW-Authenticate", `Bearer error="use_dpop_nonce", DPoP error="invalid_token"`), "", ""},
		{"resource server, another error", 401, hdr("DPoP-Nonce", n, "WWW-Authenticate", `DPoP error="invalid_token"`), "", ""},
		{"resource server, unterminated quote", 401, hdr("DPoP-Nonce", n, "WWW-Authenticate", `DPoP realm="a, error="use_dpop_nonce`), "", ""},
		{"resource server without the nonce header", 401, hdr("WWW-Authenticate", `DPoP error="use_dpop_nonce"`), "", ""},
		{"a nonce that cannot go into a proof", 401, hdr("DPoP-Nonce", `a"b`, "WWW-Authenticate", `DPoP error="use_dpop_nonce"`), "", ""},
		{"success", 200, hdr("DPoP-Nonce", n), `{"error":"use_dpop_nonce"}`, ""},
		{"forbidden", 403, hdr("DPoP-Nonce", n, "WWW-Authenticate", `DPoP error="use_dpop_nonce"`), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := oidc.UseDPoPNonce(tt.status, tt.h, []byte(tt.body))
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("got %q, %v, want %q, %v", got, ok, tt.want, tt.want != "")
			}
		})
	}
}

func TestValidDPoPNonce(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"eyJ7S_zG.eyJH0-Z.HX4w-7v", true},
		{"!#[]~", true},
		{"", false},
		{"a b", false},
		{`a"b`, false},
		{`a\b`, false},
		{"a\x7fb", false},
		{"é", false},
		{strings.Repeat("n", oidc.MaxDPoPNonceBytes), true},
		{strings.Repeat("n", oidc.MaxDPoPNonceBytes+1), false},
	} {
		if got := oidc.ValidDPoPNonce(tt.in); got != tt.want {
			t.Errorf("ValidDPoPNonce(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestNonceCache(t *testing.T) {
	c := oidc.NewNonceCache(2)
	if got := c.Get("https://a"); got != "" {
		t.Errorf("empty cache: got %q, want none", got)
	}
	c.Set("https://a", "n1")
	c.Set("https://a", "n2")
	c.Set("https://b", `bad"nonce`) // ignored
	if got := c.Get("https://a"); got != "n2" {
		t.Errorf("got %q, want the latest nonce n2", got)
	}
	if got := c.Get("https://b"); got != "" {
		t.Errorf("got %q, want an invalid nonce ignored", got)
	}
	c.Set("https://b", "m1")
	c.Set("https://a", "n3") // a is now the most recently set
	c.Set("https://c", "o1") // evicts b
	for key, want := range map[string]string{"https://a": "n3", "https://b": "", "https://c": "o1"} {
		if got := c.Get(key); got != want {
			t.Errorf("Get(%q): got %q, want %q", key, got, want)
		}
	}
	if got := c.Len(); got != 2 {
		t.Errorf("Len: got %d, want the bound 2", got)
	}
	if got := oidc.NewNonceCache(0); got == nil {
		t.Error("NewNonceCache(0) returned nil")
	}
}

func TestNonceCacheConcurrent(t *testing.T) {
	c := oidc.NewNonceCache(8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				key := fmt.Sprintf("https://s%d", (g+i)%12)
				c.Set(key, fmt.Sprintf("n%d", i))
				_ = c.Get(key)
			}
		})
	}
	wg.Wait()
	if got := c.Len(); got > 8 {
		t.Errorf("Len: got %d, want at most 8", got)
	}
}

func TestDPoPOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://API.example.com:443/x?y": "https://api.example.com",
		"http://api.example.com:80/":      "http://api.example.com",
		"https://api.example.com:8443/a":  "https://api.example.com:8443",
		"http://127.0.0.1:8080":           "http://127.0.0.1:8080",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := oidc.DPoPOrigin(u); got != want {
			t.Errorf("DPoPOrigin(%q): got %q, want %q", in, got, want)
		}
	}
}

// A resource server that demands a nonce, a client with a DPoPKey and a
// NonceCache: the first call is refused with use_dpop_nonce, the retry
// with the nonce passes, and the next call carries the remembered nonce
// from the start.
func TestDPoPNonceDance(t *testing.T) {
	const token = "access-token-value"
	var nonce atomic.Int64
	nonce.Store(1)
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		current := fmt.Sprintf("nonce-%d", nonce.Load())
		htu := "http://" + r.Host + r.URL.RequestURI()
		if r.Header.Get("Authorization") != oidc.DPoPScheme+" "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, err := oidc.VerifyDPoPProof(r.Header.Get(oidc.HeaderDPoP), r.Method, htu, oidc.DPoPCheck{AccessToken: token, Nonce: current})
		switch {
		case errors.Is(err, oidc.ErrUseDPoPNonce):
			w.Header().Set(oidc.HeaderDPoPNonce, current)
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="nonce required"`)
			w.WriteHeader(http.StatusUnauthorized)
		case err != nil:
			w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()

	key := newDPoPKey(t)
	nonces := oidc.NewNonceCache(0)
	target, err := url.Parse(srv.URL + "/orders/42?expand=items")
	if err != nil {
		t.Fatal(err)
	}
	origin := oidc.DPoPOrigin(target)
	call := func() (status int, retried bool) {
		t.Helper()
		for attempt := 0; ; attempt++ {
			proof, err := key.Proof(http.MethodGet, target.String(), token, nonces.Get(origin), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target.String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", oidc.DPoPScheme+" "+token)
			req.Header.Set(oidc.HeaderDPoP, proof)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			resp.Body.Close()
			if n, ok := oidc.UseDPoPNonce(resp.StatusCode, resp.Header, body); ok {
				nonces.Set(origin, n)
				if attempt == 0 {
					continue // one retry, as SPEC says
				}
			}
			return resp.StatusCode, attempt > 0
		}
	}

	if status, retried := call(); status != http.StatusOK || !retried {
		t.Errorf("first call: got %d, retried %v, want 200 after one retry", status, retried)
	}
	if status, retried := call(); status != http.StatusOK || retried {
		t.Errorf("second call: got %d, retried %v, want 200 at once with the remembered nonce", status, retried)
	}
	nonce.Store(2) // the server rotates its nonce
	if status, retried := call(); status != http.StatusOK || !retried {
		t.Errorf("after rotation: got %d, retried %v, want 200 after one retry", status, retried)
	}
	if got, want := calls.Load(), int64(5); got != want {
		t.Errorf("server calls: got %d, want %d", got, want)
	}
}
