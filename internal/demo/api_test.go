package demo

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const testToken = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LWFjY2Vzcy10b2tlbg.c2ln"

func fakeVerify(token string) (map[string]any, error) {
	if token != testToken {
		return nil, errors.New("token " + token + " is not valid")
	}
	return map[string]any{
		"sub":   "alice-0001",
		"aud":   "cloakroom-demo",
		"scope": "openid profile",
		"exp":   float64(1893456000),
	}, nil
}

func newTestAPI(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewAPI(fakeVerify))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func TestAPIRejectsMissingOrInvalidBearer(t *testing.T) {
	srv := newTestAPI(t)
	tests := []struct {
		name, path, auth string
	}{
		{"no header", "/whoami", ""},
		{"wrong scheme", "/whoami", "Basic " + testToken},
		{"empty bearer", "/whoami", "Bearer "},
		{"invalid token", "/whoami", "Bearer not-the-token"},
		{"token with spaces", "/whoami", "Bearer " + testToken + " x"},
		{"stream without token", "/time/stream", ""},
		{"stream invalid token", "/time/stream", "Bearer nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.auth != "" {
				h.Set("Authorization", tt.auth)
			}
			res, body := do(t, http.MethodGet, srv.URL+tt.path, h)
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status: got %d, want %d", res.StatusCode, http.StatusUnauthorized)
			}
			if got := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate: got %q, want a Bearer challenge", got)
			}
			if got := res.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type: got %q, want %q", got, "application/json")
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if got["error"] != "invalid_token" || len(got) != 1 {
				t.Errorf("body: got %v, want {error: invalid_token}", got)
			}
			if strings.Contains(body, "not-the-token") || strings.Contains(body, "nope") {
				t.Errorf("body %q echoes the presented token", body)
			}
		})
	}
}

func TestAPIWhoami(t *testing.T) {
	srv := newTestAPI(t)
	tests := []struct {
		name          string
		header        map[string]string
		wantCookie    bool
		wantCSRF      bool
		wantForwarded string
	}{
		{
			name: "bare",
		},
		{
			name:       "cookie and csrf arrive",
			header:     map[string]string{"Cookie": "__Host-Http-cloakroom=" + testToken, "X-CSRF": "1"},
			wantCookie: true,
			wantCSRF:   true,
		},
		{
			name:          "forwarded for",
			header:        map[string]string{"X-Forwarded-For": "203.0.113.7, 127.0.0.1"},
			wantForwarded: "203.0.113.7, 127.0.0.1",
		},
		{
			name:          "token smuggled into forwarded for",
			header:        map[string]string{"X-Forwarded-For": testToken + ", 198.51.100.1"},
			wantForwarded: "198.51.100.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("Authorization", "Bearer "+testToken)
			for k, v := range tt.header {
				h.Set(k, v)
			}
			res, body := do(t, http.MethodGet, srv.URL+"/whoami", h)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want %d (body %q)", res.StatusCode, http.StatusOK, body)
			}
			if strings.Contains(body, testToken) || strings.Contains(body, "c2VjcmV0LWFjY2Vzcy10b2tlbg") {
				t.Fatalf("body %q contains the token", body)
			}
			var got struct {
				Message            string `json:"message"`
				Sub                string `json:"sub"`
				Aud                string `json:"aud"`
				Scope              string `json:"scope"`
				ExpiresAt          string `json:"expires_at"`
				TokenValid         bool   `json:"token_valid"`
				CookieReceived     bool   `json:"cookie_received"`
				CSRFHeaderReceived bool   `json:"csrf_header_received"`
				ForwardedFor       string `json:"forwarded_for"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if got.Message != "hello from the demo API" || got.Sub != "alice-0001" || got.Aud != "cloakroom-demo" ||
				got.Scope != "openid profile" || got.ExpiresAt != "2030-01-01T00:00:00Z" || !got.TokenValid {
				t.Errorf("got %+v, want the fake token's claims", got)
			}
			if got.CookieReceived != tt.wantCookie {
				t.Errorf("cookie_received: got %v, want %v", got.CookieReceived, tt.wantCookie)
			}
			if got.CSRFHeaderReceived != tt.wantCSRF {
				t.Errorf("csrf_header_received: got %v, want %v", got.CSRFHeaderReceived, tt.wantCSRF)
			}
			if got.ForwardedFor != tt.wantForwarded {
				t.Errorf("forwarded_for: got %q, want %q", got.ForwardedFor, tt.wantForwarded)
			}
		})
	}
}

func TestAPIUnknownPath(t *testing.T) {
	srv := newTestAPI(t)
	for _, path := range []string{"/", "/whoami/extra", "/time", "/admin"} {
		h := http.Header{}
		h.Set("Authorization", "Bearer "+testToken)
		res, body := do(t, http.MethodGet, srv.URL+path, h)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want %d", path, res.StatusCode, http.StatusNotFound)
		}
		if strings.Contains(body, testToken) {
			t.Errorf("GET %s: body %q contains the token", path, body)
		}
	}
}

func TestAPIStream(t *testing.T) {
	srv := newTestAPI(t)
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/time/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	client := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want %d", res.StatusCode, http.StatusOK)
	}
	if got := res.Header.Get("Content-Type"); got != "text/event-stream" {
		t.Errorf("Content-Type: got %q, want %q", got, "text/event-stream")
	}

	// Each event must arrive on its own, flushed, not all at the end.
	var arrivals []time.Duration
	var data []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			arrivals = append(arrivals, time.Since(start))
			data = append(data, d)
		}
		if strings.Contains(line, testToken) {
			t.Errorf("stream line %q contains the token", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(data) != 3 {
		t.Fatalf("events: got %d (%q), want 3", len(data), data)
	}
	for i, d := range data {
		var ev struct {
			N    int    `json:"n"`
			Time string `json:"time"`
		}
		if err := json.Unmarshal([]byte(d), &ev); err != nil {
			t.Fatalf("event %d data %q: %v", i, d, err)
		}
		if ev.N != i+1 || ev.Time == "" {
			t.Errorf("event %d: got %+v, want n=%d and a time", i, ev, i+1)
		}
	}
	if gap := arrivals[2] - arrivals[0]; gap < 300*time.Millisecond {
		t.Errorf("events arrived within %v, want them about 200ms apart", gap)
	}
}

// GET /admin/overview admits only a token whose role claim is "admin", and
// tells the others apart from a missing token: 403, not 401.
func TestAPIAdminOverview(t *testing.T) {
	tokens := map[string]map[string]any{
		"admin-token": {"sub": "alice-0001", "role": "admin", "aud": "cloakroom-demo-admin", "exp": float64(1893456000)},
		"user-token":  {"sub": "bob-0001", "role": "user", "aud": "cloakroom-demo-admin"},
		"no-role":     {"sub": "svc"},
		"role-list":   {"sub": "eve", "role": []any{"admin"}},
		"role-case":   {"sub": "eve", "role": "Admin"},
	}
	srv := httptest.NewServer(NewAPI(func(tok string) (map[string]any, error) {
		if c, ok := tokens[tok]; ok {
			return c, nil
		}
		return nil, errors.New("unknown token")
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		token string
		want  int
	}{
		{"admin-token", http.StatusOK},
		{"user-token", http.StatusForbidden},
		{"no-role", http.StatusForbidden},
		{"role-list", http.StatusForbidden},
		{"role-case", http.StatusForbidden},
		{"", http.StatusUnauthorized},
		{"forged", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			h := http.Header{}
			if tt.token != "" {
				h.Set("Authorization", "Bearer "+tt.token)
			}
			res, body := do(t, http.MethodGet, srv.URL+"/admin/overview", h)
			if res.StatusCode != tt.want {
				t.Fatalf("status: got %d %s, want %d", res.StatusCode, body, tt.want)
			}
			if tt.token != "" && strings.Contains(body, tt.token) {
				t.Errorf("body %s echoes the token", body)
			}
			switch tt.want {
			case http.StatusOK:
				var got struct {
					Sub       string `json:"sub"`
					Role      string `json:"role"`
					ExpiresAt string `json:"expires_at"`
				}
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatal(err)
				}
				if got.Sub != "alice-0001" || got.Role != "admin" || got.ExpiresAt != "2030-01-01T00:00:00Z" {
					t.Errorf("body: got %+v, want alice-0001, admin, 2030-01-01T00:00:00Z", got)
				}
			case http.StatusForbidden:
				if got := res.Header.Get("WWW-Authenticate"); got != `Bearer error="insufficient_scope"` {
					t.Errorf("WWW-Authenticate: got %q, want the insufficient_scope challenge", got)
				}
				if !strings.Contains(body, `"insufficient_role"`) {
					t.Errorf("body: got %s, want error insufficient_role", body)
				}
			}
		})
	}
}
