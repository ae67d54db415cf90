package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCheckFrontends runs check on a frontends: list broken in the ways
// one can be: exit 1, and each problem with its line, as internal/config's
// golden file has them. That file leaves out the problem that refuses
// frontends: while serve does not build them; so does this test.
func TestCheckFrontends(t *testing.T) {
	testdata := filepath.Join("..", "..", "internal", "config", "testdata")
	want, err := os.ReadFile(filepath.Join(testdata, "check-frontends.golden"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OIDC_CLIENT_SECRET", "env-secret-value")
	t.Setenv("SESSION_KEY", "env-session-key-0123456789abcdef0123")
	t.Chdir(testdata)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--config", "frontends.yaml"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr.String())
	}
	var got strings.Builder
	for _, l := range strings.SplitAfter(stdout.String(), "\n") {
		if !strings.HasSuffix(l, ": frontends: not served by this version yet\n") {
			got.WriteString(l)
		}
	}
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Errorf("check output (-golden +got):\n%s", diff)
	}
	for _, secret := range []string{"env-secret-value", "env-session-key", "copy-secret-value"} {
		if strings.Contains(stdout.String(), secret) {
			t.Errorf("check printed the secret %q", secret)
		}
	}
}

// TestDocsFrontends runs check on each complete configuration of
// docs/frontends.md (a YAML block with listen: and frontends:): nothing to
// say but the problem that refuses frontends: while serve does not build
// them.
func TestDocsFrontends(t *testing.T) {
	page, err := os.ReadFile(filepath.Join(docsDir, "frontends.md"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for i, block := range strings.Split(string(page), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if strings.HasPrefix(block, "listen:") && strings.Contains(block, "\nfrontends:\n") {
			files = append(files, block)
		} else if i == 0 {
			t.Fatalf("the first YAML block of docs/frontends.md is not a complete file:\n%s", block)
		}
	}
	if len(files) < 2 {
		t.Fatalf("%d complete files in docs/frontends.md, want the reference and the worked example", len(files))
	}
	for _, v := range []string{"SESSION_KEY", "SHOP_SECRET", "ADMIN_SECRET"} {
		t.Setenv(v, "docs-example-"+strings.ToLower(v)+"-0123456789abcdef")
	}
	dir := t.TempDir()
	for _, d := range []string{"shop/dist", "admin/dist"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	for i, data := range files {
		name := filepath.Join(dir, "frontends.yaml")
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		run([]string{"check", "--config", name}, &stdout, &stderr)
		for _, l := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
			if !strings.HasSuffix(l, ": frontends: not served by this version yet") && l != name+": ok" {
				t.Errorf("file %d of docs/frontends.md: %s", i+1, l)
			}
		}
		if stderr.Len() > 0 {
			t.Errorf("file %d: stderr %s", i+1, stderr.String())
		}
	}
}
