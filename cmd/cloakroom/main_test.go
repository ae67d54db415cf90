package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`public_url: http://localhost:8080
oidc:
  issuer: http://localhost:9000
  client_id: web
  client_secret: s3cret-s3cret
session:
  store: memory
  keys: ["0123456789abcdef0123456789abcdef"]
`), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("public_url: http://app.example.com\nsession:\n  keys: [short]\nlisen: x\n"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, ""},
		{[]string{"nope"}, 2, ""},
		{[]string{"check", "--nope"}, 2, ""},
		{[]string{"check", "--config", good}, 0, "ok"},
		{[]string{"check", "--config", bad}, 1, "bad.yaml:1: public_url: use https"},
		{[]string{"check", "--config", filepath.Join(dir, "missing.yaml")}, 1, ""},
		{[]string{"serve", "--config", bad}, 1, ""},
		{[]string{"version"}, 0, "cloakroom"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d; stderr: %s", tc.args, code, tc.code, stderr.String())
		}
		if !strings.Contains(stdout.String()+stderr.String(), tc.out) {
			t.Errorf("%v: output %q lacks %q", tc.args, stdout.String()+stderr.String(), tc.out)
		}
		if strings.Contains(stdout.String()+stderr.String(), "short") {
			t.Errorf("%v: a key value was printed", tc.args)
		}
	}
}
