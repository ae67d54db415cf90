package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// frontendsBuildConfig is a frontends: list that config.Validate accepts
// and that only building the frontends finds fault with: the shop's own
// composite has a dependency cycle (line 17) and the admin console's
// private_key_file holds no key (line 27). %s is the key file's path.
const frontendsBuildConfig = `listen: 127.0.0.1:0
oidc:
  issuer: http://localhost:9000
session:
  store: memory
  keys: ["0123456789abcdef0123456789abcdef"]
apis:
  - {path: /api/users/, upstream: http://users.internal/}
frontends:
  - name: shop
    public_url: http://localhost:8080
    oidc: {client_id: shop, client_secret: s3cret-s3cret}
    composites:
      - path: /bff/fine
        parts:
          a: {api: /api/users/, path: "x"}
      - path: /bff/dashboard
        parts:
          a: {api: /api/users/, path: "x/{parts.b.id}"}
          b: {api: /api/users/, path: "y/{parts.a.id}"}
  - name: admin
    public_url: http://localhost:8080
    path: /admin/
    oidc:
      client_id: admin
      client_auth: private_key_jwt
      private_key_file: %s
`

// TestCheckFrontendsBuild: check builds every frontend's composites and
// loads every frontend's key files as serve does, and reports each
// problem at the line of the frontends[] entry that has it; serve refuses
// a file with either.
func TestCheckFrontendsBuild(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "admin-key.pem")
	if err := os.WriteFile(keyFile, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	both := strings.Replace(frontendsBuildConfig, "%s", keyFile, 1)
	write := func(name, data string) string {
		t.Helper()
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	bothFile := write("both.yaml", both)

	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--config", bothFile}, &stdout, &stderr); code != 1 {
		t.Fatalf("check: exit %d, want 1; stdout: %s stderr: %s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{
		"both.yaml:17: frontends[0].composites[1]: ",
		"cycle",
		"both.yaml:27: frontends[1].oidc.private_key_file: ",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, stdout.String())
		}
	}
	if n := strings.Count(stdout.String(), "frontends[0].composites[1]"); n != 1 {
		t.Errorf("the composite's problem is reported %d times, want once:\n%s", n, stdout.String())
	}
	if strings.Contains(stdout.String(), "composites[0]") {
		t.Errorf("check reports the composite that is fine:\n%s", stdout.String())
	}

	// serve builds the same frontends and refuses each problem alone.
	noKey := strings.Replace(both, "      client_auth: private_key_jwt\n      private_key_file: "+keyFile+"\n", "      client_secret: s3cret-s3cret\n", 1)
	noCycle := strings.Replace(both, `path: "y/{parts.a.id}"`, `path: "y"`, 1)
	if noKey == both || noCycle == both {
		t.Fatal("the single-problem files are not derived from the file with both")
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"cycle.yaml", noKey, "cycle"},
		{"key.yaml", noCycle, "frontends[1].oidc.private_key_file: "},
	} {
		f := write(tc.name, tc.data)
		stdout.Reset()
		stderr.Reset()
		if code := run([]string{"check", "--config", f}, &stdout, &stderr); code != 1 || !strings.Contains(stdout.String(), tc.want) {
			t.Errorf("check %s: exit %d, want 1 with %q; stdout: %s stderr: %s", tc.name, code, tc.want, stdout.String(), stderr.String())
		}
		stdout.Reset()
		stderr.Reset()
		if code := run([]string{"serve", "--config", f}, &stdout, &stderr); code != 1 {
			t.Errorf("serve %s: exit %d, want 1; stderr: %s", tc.name, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("serve %s: stderr lacks %q: %s", tc.name, tc.want, stderr.String())
		}
	}
}
