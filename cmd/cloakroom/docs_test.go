package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docsDir is the documentation, relative to this package's directory.
var docsDir = filepath.Join("..", "..", "docs")

// TestDocsExamples runs `cloakroom check` on every docs/examples/*.yaml the
// way an operator would: the secrets in the environment, and from a working
// directory that holds the built SPA (./dist), which check requires because
// the examples serve frontend.dir: ./dist. An example must pass without
// warnings.
func TestDocsExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(docsDir, "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no examples in %s", filepath.Join(docsDir, "examples"))
	}
	// Absolute paths first: the working directory changes below.
	for i, f := range files {
		if files[i], err = filepath.Abs(f); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("SESSION_KEY", "docs-example-session-key-0123456789abcdef")
	t.Setenv("OIDC_CLIENT_SECRET", "docs-example-client-secret")
	t.Setenv("OIDC_SERVICE_SECRET", "docs-example-service-secret")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "dist"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)

	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run([]string{"check", "--config", f}, &out, &errOut)
			if code != 0 {
				t.Fatalf("cloakroom check --config %s: exit %d\n%s%s", f, code, out.String(), errOut.String())
			}
			if strings.Contains(out.String(), "warning:") {
				t.Errorf("cloakroom check --config %s warns:\n%s", f, out.String())
			}
		})
	}
}

// mdLink matches the target of a Markdown link: [text](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocsLinks checks that every relative link in docs/**/*.md names an
// existing file, and that every example has its provider page.
func TestDocsLinks(t *testing.T) {
	var pages []string
	err := filepath.WalkDir(docsDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			pages = append(pages, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatalf("no pages in %s", docsDir)
	}
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			if _, err := os.Stat(filepath.Join(filepath.Dir(page), filepath.FromSlash(target))); err != nil {
				t.Errorf("%s: broken link %q", page, m[1])
			}
		}
	}

	examples, _ := filepath.Glob(filepath.Join(docsDir, "examples", "*.yaml"))
	for _, ex := range examples {
		name := strings.TrimSuffix(filepath.Base(ex), ".yaml")
		if _, err := os.Stat(filepath.Join(docsDir, "providers", name+".md")); err != nil {
			t.Errorf("%s has no page docs/providers/%s.md", ex, name)
		}
	}
}
