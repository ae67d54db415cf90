package archtest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/cloakroom/cloakroom/"

// allowed lists, for each package, the project packages its non-test files
// may import. A package missing here fails the test: new packages decide
// their place in the graph explicitly.
var allowed = map[string][]string{
	"bench/loadgen":                {"internal/demo/idp", "internal/demo/idp/loginform", "internal/gctune", "internal/proxy"},
	"e2e/fleet":                    {"internal/demo", "internal/demo/idp", "internal/demo/idp/loginform"},
	"cmd/cloakroom":                {"internal/config", "internal/server", "internal/demo", "internal/gctune"},
	"internal/gctune":              {},
	"internal/archtest":            {},
	"internal/httpx":               {},
	"internal/admin":               {"internal/session", "internal/tokens", "internal/httpx"},
	"internal/config":              {},
	"internal/session":             {},
	"internal/session/memstore":    {"internal/session"},
	"internal/session/filestore":   {"internal/session"},
	"internal/session/redisstore":  {"internal/session"},
	"internal/session/sessiontest": {"internal/session"},
	"internal/redistest":           {},
	"internal/tlstest":             {},
	"internal/acmetest":            {"internal/oidctest/gotool", "internal/tlstest"},
	"internal/tlsserve":            {},
	"internal/oidc":                {"internal/httpx"},
	"internal/tokens":              {"internal/session", "internal/oidc", "internal/httpx"},
	"internal/bff":                 {"internal/session", "internal/oidc", "internal/httpx", "internal/csrf", "internal/tokens"},
	"internal/csrf":                {"internal/httpx"},
	"internal/proxy":               {"internal/httpx"},
	"internal/spa":                 {},
	"internal/aggregate":           {"internal/httpx"},
	"internal/oidctest/hostile":    {},
	"internal/metrics":             {},
	"internal/ratelimit":           {"internal/httpx"},
	"internal/demo":                {"internal/demo/idp"},
	"internal/demo/idp":            {},
	"internal/demo/idp/loginform":  {},
	"internal/oidctest/zitadelop":  {},
	"internal/oidctest/gotool":     {},
	"internal/oidctest/recorder":   {},
	"internal/oidctest/dex":        {"internal/oidctest/gotool", "internal/oidctest/recorder"},
	"internal/oidctest/hydra":      {"internal/oidctest/gotool", "internal/oidctest/recorder"},
	"internal/oidctest/nodeop":     {"internal/tlstest"},
	"internal/server": {
		"internal/admin", "internal/aggregate", "internal/bff", "internal/config", "internal/csrf", "internal/httpx", "internal/oidc",
		"internal/metrics", "internal/proxy", "internal/ratelimit", "internal/session", "internal/session/memstore", "internal/session/filestore", "internal/session/redisstore", "internal/spa", "internal/tlsserve", "internal/tokens",
	},
}

func TestDependencies(t *testing.T) {
	root := filepath.Join("..", "..")
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() && path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // a module of its own (tools/*): not part of this graph
			}
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		seen[pkg] = true
		ok, known := allowed[pkg]
		if !known {
			t.Errorf("package %s is not in the dependency table", pkg)
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if dep, ok2 := strings.CutPrefix(p, module); ok2 && !slices.Contains(ok, dep) {
				t.Errorf("%s imports %s, which the dependency table forbids", path, dep)
			}
			if pkg != "internal/server" && pkg != "cmd/cloakroom" && p == module+"internal/config" {
				t.Errorf("%s imports config; only server and cmd may", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for pkg := range allowed {
		if !seen[pkg] {
			t.Errorf("dependency table names %s, which has no Go files", pkg)
		}
	}
}
