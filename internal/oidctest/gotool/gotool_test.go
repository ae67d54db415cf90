package gotool

import (
	"maps"
	"os/exec"
	"slices"
	"testing"
)

// TestBuildAll builds every tool and runs it once, so that a broken pin or a
// binary that does not start fails here, by name. `make test` runs it before
// the rest of the suite with a long time limit: a cold build of a provider
// takes minutes on a small machine.
func TestBuildAll(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(tools)) {
		t.Run(name, func(t *testing.T) {
			bin := Build(t, name)
			args := tools[name].version
			if len(args) == 0 {
				args = []string{"version"}
			}
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s %v: %v\n%s", name, args, err, out)
			}
			if len(out) == 0 {
				t.Fatalf("%s %v printed nothing", name, args)
			}
		})
	}
}
