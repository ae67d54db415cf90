package deploycheck

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The image's entrypoint; the chart mounts its ConfigMap at the same path.
var wantEntrypoint = []string{"/cloakroom", "serve", "--config", "/etc/cloakroom/cloakroom.yaml"}

// dockerBuild is what the tests take from deploy/Dockerfile's build stage.
type dockerBuild struct {
	stages   []Stage
	builder  Stage
	env      []string // the build stage's ENV, as KEY=VALUE
	args     []string // the go build command
	outIndex int      // index in args of the -o path
	ignore   Ignore
}

func readBuild() (*dockerBuild, error) {
	f, err := os.Open(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	stages, err := ParseDockerfile(f)
	if err != nil {
		return nil, err
	}
	b := &dockerBuild{stages: stages}
	for _, st := range stages {
		for _, run := range st.Find("RUN") {
			words, err := SplitWords(run)
			if err != nil {
				return nil, fmt.Errorf("RUN %s: %w", run, err)
			}
			for len(words) > 0 && strings.HasPrefix(words[0], "--") {
				words = words[1:] // --mount=type=cache,...
			}
			if len(words) < 2 || words[0] != "go" || words[1] != "build" {
				continue
			}
			if b.args != nil {
				return nil, fmt.Errorf("more than one go build")
			}
			b.builder, b.args = st, words
			b.outIndex = slices.Index(words, "-o") + 1
			if b.outIndex == 0 || b.outIndex >= len(words) {
				return nil, fmt.Errorf("go build without -o: %s", run)
			}
			for _, e := range st.Find("ENV") {
				b.env = append(b.env, envPairs(e)...)
			}
		}
	}
	if b.args == nil {
		return nil, fmt.Errorf("no stage runs go build")
	}
	ig, err := os.Open(filepath.Join(deployDir, "Dockerfile.dockerignore"))
	if err != nil {
		return nil, err
	}
	defer ig.Close()
	if b.ignore, err = ParseIgnore(ig); err != nil {
		return nil, err
	}
	return b, nil
}

// envPairs splits the KEY=VALUE form of ENV (values without spaces).
func envPairs(s string) []string {
	var out []string
	for _, w := range strings.Fields(s) {
		if strings.Contains(w, "=") {
			out = append(out, w)
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	b, err := readBuild()
	if err != nil {
		t.Fatal(err)
	}
	if len(b.stages) < 2 {
		t.Fatalf("got %d stages, want a build stage and a final one", len(b.stages))
	}
	if !strings.HasPrefix(b.builder.From, "golang:") || b.builder.Name == "" {
		t.Errorf("build stage FROM %s AS %q: want a named golang stage", b.builder.From, b.builder.Name)
	}
	if !slices.Contains(b.env, "CGO_ENABLED=0") {
		t.Errorf("build stage ENV %v: want CGO_ENABLED=0", b.env)
	}
	if !slices.Contains(b.args, "-trimpath") {
		t.Errorf("go build %v: want -trimpath", b.args)
	}
	if last := b.args[len(b.args)-1]; last != "./cmd/cloakroom" {
		t.Errorf("go build builds %q, want ./cmd/cloakroom", last)
	}

	final := b.stages[len(b.stages)-1]
	if !strings.HasPrefix(final.From, "gcr.io/distroless/static") || !strings.HasSuffix(final.From, ":nonroot") {
		if final.From != "scratch" {
			t.Errorf("final FROM %s: want distroless static nonroot or scratch", final.From)
		}
	}
	copied := false
	for _, c := range final.Find("COPY") {
		if strings.Contains(c, "--from="+b.builder.Name) && strings.Contains(c, b.args[b.outIndex]+" ") {
			copied = true
		}
	}
	if !copied {
		t.Errorf("final stage COPY %v: want the binary %s from stage %s", final.Find("COPY"), b.args[b.outIndex], b.builder.Name)
	}

	users := final.Find("USER")
	if len(users) != 1 {
		t.Fatalf("final stage USER %v: want exactly one", users)
	}
	uid, gid, ok := strings.Cut(users[0], ":")
	u, uerr := strconv.Atoi(uid)
	g, gerr := strconv.Atoi(gid)
	if !ok || uerr != nil || gerr != nil || u == 0 || g == 0 {
		t.Errorf("USER %s: want a numeric non-root uid:gid", users[0])
	}
	values := chartValues(t)
	if want := fmt.Sprintf("%v:%v", values["runAsUser"], values["runAsGroup"]); users[0] != want {
		t.Errorf("USER %s, want the chart's runAsUser:runAsGroup %s", users[0], want)
	}

	var entry []string
	eps := final.Find("ENTRYPOINT")
	if len(eps) != 1 || json.Unmarshal([]byte(eps[0]), &entry) != nil || !slices.Equal(entry, wantEntrypoint) {
		t.Errorf("ENTRYPOINT %v, want the exec form %q", eps, wantEntrypoint)
	}
	ports := map[string]any{}
	for _, e := range final.Find("EXPOSE") {
		for _, p := range strings.Fields(e) {
			ports[p] = true
		}
	}
	chartPorts := values["ports"].(map[string]any)
	for _, name := range []string{"http", "admin"} {
		if p := fmt.Sprint(chartPorts[name]); ports[p] == nil {
			t.Errorf("EXPOSE %v lacks the chart's %s port %s", final.Find("EXPOSE"), name, p)
		}
	}
}

// TestDockerfileBinary builds cloakroom with the Dockerfile's own command
// and checks that it is static, so that it runs on distroless static.
func TestDockerfileBinary(t *testing.T) {
	bin := cloakroomBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary has a program interpreter: it needs libc, want a static binary (CGO_ENABLED=0)")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v, want none", libs)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "cloakroom ") {
		t.Errorf("cloakroom version: %v\n%s", err, out)
	}
}

func TestDockerIgnore(t *testing.T) {
	ig := Ignore{"**/node_modules", "bench", "*.md", "**/*.db", "!keep.md"}
	tests := []struct {
		path string
		want bool
	}{
		{"bench/load.sh", true},
		{"e2e/browser/node_modules/x/index.js", true},
		{"node_modules", true},
		{"README.md", true},
		{"keep.md", false},
		{"docs/x.md", false},
		{"a/b/sessions.db", true},
		{"cmd/cloakroom/main.go", false},
		{"benchmark.go", false},
	}
	for _, tt := range tests {
		if got := ig.Excluded(tt.path); got != tt.want {
			t.Errorf("Excluded(%q): got %v, want %v", tt.path, got, tt.want)
		}
	}
}
