package server_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/server"
)

const adminToken = "an-admin-token-of-at-least-32-bytes!"

func TestAdminSessionAPI(t *testing.T) {
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminURL := "http://" + aln.Addr().String()
	ln, public := listenLocal(t)
	p, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.AdminToken = adminToken
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: newUpstream(t, nil).URL, Token: "user"}}
	g := startGateway(t, ln, cfg, server.Options{AdminListener: aln})
	e := &env{g: g, idp: p}
	one, two, bob := newBrowser(t), newBrowser(t), newBrowser(t)
	e.login(t, one, "alice")
	e.login(t, two, "alice")
	e.login(t, bob, "bob")

	call := func(method, path, token string) response {
		req, _ := http.NewRequest(method, adminURL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return newBrowser(t).do(req)
	}
	for _, tok := range []string{"", "wrong", adminToken + "x"} {
		if r := call("GET", "/admin/sessions?sub=alice-1", tok); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("token %q: %d", tok, r.StatusCode)
		}
	}
	// Never on the public listener.
	if r := one.get(g.URL+"/admin/sessions?sub=alice-1", "Authorization", "Bearer "+adminToken); r.StatusCode == http.StatusOK {
		t.Error("the session API answers on the public listener")
	}
	if r := call("GET", "/healthz", ""); r.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", r.StatusCode)
	}
	if r := call("GET", "/readyz", ""); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"ready":true`) {
		t.Errorf("/readyz: %d %s", r.StatusCode, r.Body)
	}

	r := call("GET", "/admin/sessions?sub=alice-1", adminToken)
	var list []struct {
		Handle, Sub string
		ClientIP    string `json:"client_ip"`
	}
	if err := json.Unmarshal([]byte(r.Body), &list); err != nil || len(list) != 2 {
		t.Fatalf("list: %d %s", r.StatusCode, r.Body)
	}
	for _, s := range list {
		if s.Sub != "alice-1" || !strings.HasPrefix(s.Handle, "s:") || s.ClientIP != "127.0.0.1" {
			t.Errorf("entry %+v", s)
		}
	}
	for _, tok := range p.IssuedTokens() {
		if strings.Contains(r.Body, tok) {
			t.Fatal("a token in the admin answer")
		}
	}
	for _, c := range one.jar.Cookies(mustURL(g.URL)) {
		if strings.Contains(r.Body, c.Value) {
			t.Fatal("a ticket in the admin answer")
		}
	}

	// Through the CLI, against this running instance.
	bin := filepath.Join(t.TempDir(), "cloakroom")
	build := exec.Command("go", "build", "-o", bin, "github.com/cloakroom/cloakroom/cmd/cloakroom")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cli := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"sessions"}, append(args, "--admin", adminURL)...)...)
		cmd.Env = append(os.Environ(), "CLOAKROOM_ADMIN_TOKEN="+adminToken)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cloakroom sessions %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := cli("list", "--sub", "alice-1")
	if strings.Count(out, "s:") != 2 || !strings.Contains(out, "HANDLE") {
		t.Errorf("list output:\n%s", out)
	}
	before := p.Stats().Revocations
	if out := cli("revoke", "--id", list[0].Handle); !strings.Contains(out, "revoked 1") {
		t.Errorf("revoke output: %s", out)
	}
	if p.Stats().Revocations != before+1 {
		t.Error("refresh token not revoked")
	}
	status := func(b *browser) int { return b.get(g.URL+"/bff/user", "X-CSRF", "1").StatusCode }
	if status(one)+status(two) != 401+200 {
		t.Errorf("after revoking one: %d %d", status(one), status(two))
	}
	if out := cli("revoke", "--sub", "alice-1"); !strings.Contains(out, "revoked 1") {
		t.Errorf("revoke --sub output: %s", out)
	}
	if status(one) != 401 || status(two) != 401 || status(bob) != 200 {
		t.Errorf("after revoking alice: %d %d %d", status(one), status(two), status(bob))
	}
}
