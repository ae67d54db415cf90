package deploycheck

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	repoRoot  = mustAbs("../..")
	deployDir = filepath.Join(repoRoot, "deploy")
	chartDir  = filepath.Join(deployDir, "helm", "cloakroom")
)

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

// tmpRoot holds what the tests build once (the cloakroom binary); TestMain
// removes it.
var tmpRoot string

func TestMain(m *testing.M) {
	var err error
	if tmpRoot, err = os.MkdirTemp("", "deploycheck-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// requireIntegration reports whether a missing external tool must fail the
// test instead of skipping it (CI, make test).
func requireIntegration() bool {
	return os.Getenv("CI") != "" || os.Getenv("CLOAKROOM_REQUIRE_INTEGRATION") != ""
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// cloakroomBinary builds ./cmd/cloakroom the way deploy/Dockerfile does:
// the build stage's ENV and its `go build` command, run on a copy of the
// build context its .dockerignore leaves (without .git, so -buildvcs=false).
// Every test shares the one binary.
func cloakroomBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() { binPath, buildErr = buildLikeDockerfile() })
	if buildErr != nil {
		t.Fatalf("build cloakroom as deploy/Dockerfile does: %v", buildErr)
	}
	return binPath
}

func buildLikeDockerfile() (string, error) {
	b, err := readBuild()
	if err != nil {
		return "", err
	}
	ctxDir := filepath.Join(tmpRoot, "context")
	if err := CopyContext(repoRoot, ctxDir, b.ignore); err != nil {
		return "", fmt.Errorf("copy the build context: %w", err)
	}
	out := filepath.Join(tmpRoot, "bin", "cloakroom")
	args := append([]string(nil), b.args...)
	args[b.outIndex] = out
	cmd := exec.Command(b.args[0], args[1:]...)
	cmd.Dir = ctxDir
	// The copy has no .git; the image build has one and stamps from it.
	goflags := "-buildvcs=false"
	env := os.Environ()
	for _, kv := range b.env {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			goflags = v + " " + goflags
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "GOFLAGS="+goflags)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", strings.Join(b.args, " "), err, stderr.String())
	}
	return out, nil
}
