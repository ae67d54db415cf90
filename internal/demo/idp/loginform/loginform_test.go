package loginform_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/demo/idp/loginform"
)

// TestFill signs in at the real demo provider: the filled form must carry
// the pending request, so that the provider answers with a code for the
// client's redirect URI and the state it was given.
func TestFill(t *testing.T) {
	const redirect = "http://rp.test/callback"
	var p *idp.Provider
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.ServeHTTP(w, r) }))
	defer srv.Close()
	var err error
	p, err = idp.New(idp.Options{
		Issuer:  srv.URL,
		Clients: []idp.Client{{ID: "web", Secret: "web-secret", RedirectURIs: []string{redirect}}},
		Users:   []idp.User{{Subject: "u1", Username: "alice", Password: "alice"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	auth, _ := url.Parse(srv.URL + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {redirect}, "scope": {"openid"},
		"state": {"s&t=1"}, "nonce": {"n"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
	}.Encode())
	resp, err := client.Get(auth.String())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: status %d", resp.StatusCode)
	}

	for _, tt := range []struct {
		password string
		wantCode bool
	}{{"wrong", false}, {"alice", true}} {
		action, form, err := loginform.Fill(auth, string(page), "alice", tt.password)
		if err != nil {
			t.Fatal(err)
		}
		if action.Host != auth.Host {
			t.Errorf("action %s: want the provider's origin %s", action, auth.Host)
		}
		resp, err := client.PostForm(action.String(), form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		gotCode := loc != nil && strings.HasPrefix(loc.String(), redirect) && loc.Query().Get("code") != "" && loc.Query().Get("state") == "s&t=1"
		if gotCode != tt.wantCode {
			t.Errorf("password %q: status %d, Location %q; want a code: %v", tt.password, resp.StatusCode, resp.Header.Get("Location"), tt.wantCode)
		}
	}
}
