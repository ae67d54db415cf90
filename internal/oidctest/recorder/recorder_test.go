package recorder_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/oidctest/recorder"
)

// provider answers the token endpoint with a JSON body depending on the
// grant, and anything else with its path.
func provider(t *testing.T) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/token" {
			_, _ = io.WriteString(w, r.URL.Path)
			return
		}
		body, _ := io.ReadAll(r.Body) // what the provider gets must be the whole form
		w.Header().Set("Content-Type", "application/json")
		if !strings.Contains(string(body), "client_secret=s3cret") {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		_, _ = io.WriteString(w, `{"access_token":"at","refresh_token":"rt-1"}`)
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestProxy(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		path     string
		form     url.Values
		basic    string // Basic user, "" for none
		want     recorder.Exchange
		wantBody string
	}{
		{
			name: "token, form auth", method: http.MethodPost, path: "/token",
			form: url.Values{"grant_type": {"refresh_token"}, "client_id": {"web"}, "client_secret": {"s3cret"}, "password": {"pw"}},
			want: recorder.Exchange{Method: http.MethodPost, Path: "/token", Status: http.StatusOK, ClientID: "web", RefreshToken: "rt-1",
				Form: url.Values{"grant_type": {"refresh_token"}, "client_id": {"web"}}},
			wantBody: `{"access_token":"at","refresh_token":"rt-1"}`,
		},
		{
			name: "token error, basic auth", method: http.MethodPost, path: "/token",
			form: url.Values{"grant_type": {"refresh_token"}, "client_id": {"form-id"}}, basic: "a%3Ab",
			want: recorder.Exchange{Method: http.MethodPost, Path: "/token", Status: http.StatusUnauthorized, ClientID: "a:b", Error: "invalid_client",
				Form: url.Values{"grant_type": {"refresh_token"}, "client_id": {"form-id"}}},
			wantBody: `{"error":"invalid_client"}`,
		},
		{
			name: "other path", method: http.MethodGet, path: "/auth?state=x",
			want:     recorder.Exchange{Method: http.MethodGet, Path: "/auth", Query: url.Values{"state": {"x"}}, Status: http.StatusOK},
			wantBody: "/auth",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := recorder.New(provider(t), "/token", "client_secret", "password")
			front := httptest.NewServer(p)
			t.Cleanup(front.Close)
			req, err := http.NewRequestWithContext(t.Context(), tt.method, front.URL+tt.path, strings.NewReader(tt.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic != "" {
				req.SetBasicAuth(tt.basic, "basic-secret")
			}
			resp, err := front.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != tt.wantBody {
				t.Errorf("body: got %s, want %s", body, tt.wantBody)
			}

			xs := p.Exchanges()
			if len(xs) != 1 {
				t.Fatalf("exchanges: got %d, want 1", len(xs))
			}
			got := xs[0]
			if got.Received.IsZero() || got.Answered.Before(got.Received) {
				t.Errorf("times: received %v, answered %v", got.Received, got.Answered)
			}
			got.Received, got.Answered = tt.want.Received, tt.want.Answered
			if len(got.Query) == 0 {
				got.Query = nil
			}
			if g, w := fmtExchange(got), fmtExchange(tt.want); g != w {
				t.Errorf("exchange: got %v, want %v", g, w)
			}
		})
	}
}

func fmtExchange(x recorder.Exchange) string {
	return strings.Join([]string{x.Method, x.Path, x.Query.Encode(), x.Form.Encode(), x.ClientID, http.StatusText(x.Status), x.RefreshToken, x.Error}, "|")
}

func TestBuffer(t *testing.T) {
	var b recorder.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_, _ = b.Write([]byte("x"))
		}
	}()
	for range 100 {
		_ = b.String()
	}
	<-done
	if got, want := b.String(), strings.Repeat("x", 100); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
