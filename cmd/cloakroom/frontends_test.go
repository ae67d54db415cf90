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
