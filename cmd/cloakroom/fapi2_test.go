package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCheckFAPI2 runs check on the configuration that names the FAPI 2.0
// profile and breaks it: exit 1, and each violation with its line, as
// internal/config's golden file has them.
func TestCheckFAPI2(t *testing.T) {
	testdata := filepath.Join("..", "..", "internal", "config", "testdata")
	want, err := os.ReadFile(filepath.Join(testdata, "check-fapi2.golden"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OIDC_CLIENT_SECRET", "env-secret-value")
	t.Chdir(testdata)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--config", "fapi2.yaml"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr.String())
	}
	if diff := cmp.Diff(string(want), stdout.String()); diff != "" {
		t.Errorf("check output (-golden +got):\n%s", diff)
	}
	if bytes.Contains(stdout.Bytes(), []byte("env-secret-value")) {
		t.Error("check printed the client secret")
	}
}
