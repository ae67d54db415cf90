// Package gotool is TEST SUPPORT ONLY: it builds a Go program that the tests
// run beside Cloakroom (an identity provider such as Ory Hydra or Dex) from a
// module of its own under tools/<name>/ in the repository, and caches the
// binary, so that a provider is compiled once per machine and version, not
// once per test run.
//
// The cache lives in $CLOAKROOM_TOOL_CACHE, else in the user cache directory
// (~/.cache/cloakroom-tools). A binary's file name holds a hash of the tool
// module's go.mod and go.sum and the build tags, so a version bump rebuilds.
// Concurrent test binaries that want the same tool wait for one build (an
// flock on a file beside it).
//
// Start runs such a binary in a process group of its own until it is ready
// (see Process).
//
// A build that fails fails the test: the provider tests are integration
// tests, and CI must never pass them by skipping.
package gotool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildTimeout bounds one build: a provider with cgo SQLite on a 2-core
// machine with a cold module cache takes several minutes.
const buildTimeout = 20 * time.Minute

// spec is how one tool is built: its main package and build tags, and the
// module directory under tools/ when it is not the tool's name (one module
// may hold several programs).
type spec struct {
	pkg  string
	tags []string
	dir  string
	// version is the arguments that make the program print something and
	// exit 0 (TestBuildAll); "version" when empty.
	version []string
}

// tools are the programs the tests run, by the name of their module
// directory under tools/. `make test` builds them all first (TestBuildAll),
// so that no test package spends its own time limit on a cold build.
var tools = map[string]spec{
	// Ory Hydra v2.3.0 with its in-memory SQLite database (DSN=memory).
	"hydra": {pkg: "github.com/ory/hydra/v2", tags: []string{"sqlite", "sqlite_omit_load_extension"}},
	// Dex v2.45.1.
	"dex": {pkg: "github.com/dexidp/dex/cmd/dex"},
	// Pebble v2.10.3, Let's Encrypt's ACME test server, and its challenge
	// test server (the DNS server Pebble resolves names with), from one
	// module.
	"pebble":              {pkg: "github.com/letsencrypt/pebble/v2/cmd/pebble", dir: "pebble", version: []string{"-version"}},
	"pebble-challtestsrv": {pkg: "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv", dir: "pebble", version: []string{"-h"}},
}

// Build returns the path of the binary of the tool name (a key of tools),
// built in its module tools/<name> (or tools/<dir>).
func Build(t testing.TB, name string) string {
	t.Helper()
	sp, ok := tools[name]
	if !ok {
		t.Fatalf("gotool: no tool %q", name)
	}
	dir := sp.dir
	if dir == "" {
		dir = name
	}
	path, err := build(name, dir, sp.pkg, sp.tags)
	if err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	return path
}

func build(name, module, pkg string, tags []string) (string, error) {
	dir, err := toolDir(module)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	fmt.Fprintf(h, "\x00%s\x00%s", pkg, strings.Join(tags, ","))
	cache := os.Getenv("CLOAKROOM_TOOL_CACHE")
	if cache == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(uc, "cloakroom-tools")
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(cache, name+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another test binary built it while we waited
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	args := []string{"build", "-trimpath", "-o", bin + ".tmp"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = dir
	// The tool module is its own module; a workspace would mix it with ours.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), dir, err, out)
	}
	return bin, os.Rename(bin+".tmp", bin)
}

// toolDir finds tools/<name> above the working directory (go test runs in
// the package's directory).
func toolDir(name string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "tools", name)
		if st, err := os.Stat(filepath.Join(p, "go.mod")); err == nil && !st.IsDir() {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no tools/%s/go.mod above %s", name, wd)
		}
	}
}
