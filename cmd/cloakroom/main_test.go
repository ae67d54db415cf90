package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minimalConfig is a valid configuration with nothing optional.
const minimalConfig = `public_url: http://localhost:8080
oidc:
  issuer: http://localhost:9000
  client_id: web
  client_secret: s3cret-s3cret
session:
  store: memory
  keys: ["0123456789abcdef0123456789abcdef"]
`

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(minimalConfig), 0o600)
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

func TestCheckComposites(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "c.yaml")
	os.WriteFile(f, []byte(minimalConfig+`apis:
  - path: /api/users/
    upstream: http://users.internal/
composites:
  - path: /bff/dashboard
    parts:
      a: {api: /api/users/, path: "x/{parts.b.id}"}
      b: {api: /api/users/, path: "y/{parts.a.id}"}
  - path: /bff/other
    parts:
      c: {api: /api/users/, path: "z/{weird.thing}"}
`), 0o600)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--config", f}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; %s %s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"c.yaml:13: composites[0]", "c.yaml:17: composites[1]", "cycle", "unknown source"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
