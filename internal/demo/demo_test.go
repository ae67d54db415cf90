package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestStartBackends(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	b, err := StartBackends(ctx, Options{PublicURL: "http://localhost:8080/"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	if !strings.HasPrefix(b.IssuerURL, "http://127.0.0.1:") || strings.HasSuffix(b.IssuerURL, "/") {
		t.Errorf("IssuerURL: got %q, want http://127.0.0.1:PORT", b.IssuerURL)
	}
	if !strings.HasPrefix(b.APIURL, "http://127.0.0.1:") || !strings.HasSuffix(b.APIURL, "/") {
		t.Errorf("APIURL: got %q, want http://127.0.0.1:PORT/", b.APIURL)
	}
	if b.ClientID != "cloakroom-demo" || len(b.ClientSecret) < 32 {
		t.Errorf("client: got %q with a %d-byte secret, want cloakroom-demo with a long random one", b.ClientID, len(b.ClientSecret))
	}
	if b.IdP == nil || b.IdP.Issuer() != b.IssuerURL {
		t.Errorf("IdP issuer: got %v, want %q", b.IdP, b.IssuerURL)
	}
	if len(b.Users) != 3 || b.Users[0].Username != "alice" || b.Users[1].Username != "bob" || b.Users[2].Username != "carol" {
		t.Errorf("Users: got %+v, want alice, bob and carol", b.Users)
	}
	other, err := StartBackends(ctx, Options{PublicURL: "http://localhost:8080"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.ClientSecret == b.ClientSecret {
		t.Error("two starts made the same client secret")
	}

	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(b.IssuerURL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Issuer string `json:"issuer"`
	}
	err = json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&disc)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || disc.Issuer != b.IssuerURL {
		t.Errorf("discovery: got %d %+v (%v), want 200 with issuer %q", res.StatusCode, disc, err, b.IssuerURL)
	}

	res, err = client.Get(b.APIURL + "whoami")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without a token: got %d, want %d", res.StatusCode, http.StatusUnauthorized)
	}

	// Cancelling the context stops both servers.
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, errIdP := client.Get(b.IssuerURL + "/.well-known/openid-configuration")
		_, errAPI := client.Get(b.APIURL + "whoami")
		if errIdP != nil && errAPI != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("servers still answer after the context was cancelled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close after cancel: %v", err)
	}
}

func TestStartBackendsRejectsBadOptions(t *testing.T) {
	tests := []Options{
		{},
		{PublicURL: "localhost:8080"},
		{PublicURL: "ftp://localhost"},
		{PublicURL: "http://user:pw@localhost:8080"},
		{PublicURL: "http://localhost:8080/?x=1"},
		{PublicURL: "http://localhost:8080", AccessTokenTTL: -time.Second},
	}
	for _, opts := range tests {
		if b, err := StartBackends(t.Context(), opts); err == nil {
			b.Close()
			t.Errorf("StartBackends(%+v): got no error, want one", opts)
		}
	}
}

func TestUsers(t *testing.T) {
	users := Users()
	want := map[string]string{"alice": "admin", "bob": "user", "carol": "user"}
	for _, u := range users {
		if u.Password != u.Username || u.Subject != u.Username+"-0001" {
			t.Errorf("user %q: password %q subject %q, want the name and NAME-0001", u.Username, u.Password, u.Subject)
		}
		if got := u.Claims["role"]; got != want[u.Username] {
			t.Errorf("user %q role: got %v, want %v", u.Username, got, want[u.Username])
		}
		for _, c := range []string{"name", "email", "email_verified", "groups"} {
			if _, ok := u.Claims[c]; !ok {
				t.Errorf("user %q lacks claim %q", u.Username, c)
			}
		}
	}
	users[0].Claims["role"] = "changed"
	if Users()[0].Claims["role"] != "admin" {
		t.Error("Users shares its claims between calls")
	}
}

// A token from the real provider, got through the code flow as the gateway
// would, is accepted by the demo API, which reports on it without echoing it.
func TestBackendsCodeFlowReachesAPI(t *testing.T) {
	const public = "http://localhost:8080"
	b, err := StartBackends(t.Context(), Options{PublicURL: public, AccessTokenTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	token := codeFlowToken(t, b, b.ClientID, b.ClientSecret, public+"/bff/callback", "alice")

	status, body := callAPI(t, b.APIURL+"whoami", token)
	if status != http.StatusOK {
		t.Fatalf("whoami: got %d %s, want 200", status, body)
	}
	if bytes.Contains(body, []byte(token)) {
		t.Fatalf("whoami body %s contains the access token", body)
	}
	var who struct {
		Sub       string `json:"sub"`
		ExpiresAt string `json:"expires_at"`
	}
	if err := json.Unmarshal(body, &who); err != nil {
		t.Fatal(err)
	}
	exp, err := time.Parse(time.RFC3339, who.ExpiresAt)
	if who.Sub != "alice-0001" || err != nil || time.Until(exp) > 2*time.Minute {
		t.Errorf("whoami: got sub %q expires_at %q, want alice-0001 expiring within the configured minute", who.Sub, who.ExpiresAt)
	}
}

// The admin console's client is registered under AdminPath and signs users
// in like the shop's; the admin API admits alice (role admin) only.
func TestBackendsAdminClient(t *testing.T) {
	const public = "http://localhost:8080"
	b, err := StartBackends(t.Context(), Options{PublicURL: public})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.AdminClientID != "cloakroom-demo-admin" || len(b.AdminClientSecret) < 32 || b.AdminClientSecret == b.ClientSecret {
		t.Errorf("admin client: got %q with a %d-byte secret, want cloakroom-demo-admin with a long random one of its own", b.AdminClientID, len(b.AdminClientSecret))
	}
	tests := []struct {
		user string
		want int
	}{
		{"alice", http.StatusOK},
		{"bob", http.StatusForbidden},
		{"carol", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			token := codeFlowToken(t, b, b.AdminClientID, b.AdminClientSecret, public+"/admin/bff/callback", tt.user)
			if status, body := callAPI(t, b.APIURL+"admin/overview", token); status != tt.want {
				t.Errorf("admin/overview as %s: got %d %s, want %d", tt.user, status, body, tt.want)
			}
		})
	}
}

// codeFlowToken signs user in at b's provider through the code flow with
// PKCE, as the gateway would for the client id at redirect, and returns
// the access token.
func codeFlowToken(t *testing.T, b *Backends, id, secret, redirect, user string) string {
	t.Helper()
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {id},
		"redirect_uri":          {redirect},
		"scope":                 {"openid profile email offline_access"},
		"state":                 {"st"},
		"nonce":                 {"no"},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	res, err := client.Get(b.IssuerURL + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	for _, id := range []string{`id="username"`, `id="password"`, `id="submit"`} {
		if !bytes.Contains(page, []byte(id)) {
			t.Errorf("login page lacks %s, which the browser driver fills in", id)
		}
	}
	m := regexp.MustCompile(`name="request" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("login page (status %d) has no request handle:\n%s", res.StatusCode, page)
	}

	res, err = client.PostForm(b.IssuerURL+"/authorize", url.Values{
		"request": {string(m[1])}, "username": {user}, "password": {user},
	})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc, err := res.Location()
	if err != nil || !strings.HasPrefix(loc.String(), redirect+"?") {
		t.Fatalf("login: got %d to %v (%v), want a redirect to %s", res.StatusCode, loc, err, redirect)
	}

	req, _ := http.NewRequest(http.MethodPost, b.IssuerURL+"/token", strings.NewReader(url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {loc.Query().Get("code")},
		"redirect_uri":  {redirect},
		"code_verifier": {verifier},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	res, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&tok)
	res.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("token: got %d with no access token (%v)", res.StatusCode, err)
	}
	return tok.AccessToken
}

// callAPI calls the demo API at u with token and returns the status and
// body.
func callAPI(t *testing.T, u, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, body
}
