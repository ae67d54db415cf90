package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// env is a lookup over a fixed map.
func env(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func TestExpand(t *testing.T) {
	lookup := env(map[string]string{"A": "alpha", "EMPTY": "", "YAML": "x: y\n- z", "DOLLAR": "${A}"})
	tests := []struct {
		in       string
		want     string
		used     bool
		problems []string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha", used: true},
		{in: "pre-${A}-post", want: "pre-alpha-post", used: true},
		{in: "${A}${A}", want: "alphaalpha", used: true},
		{in: "${UNSET:-fallback}", want: "fallback", used: true},
		{in: "${EMPTY:-fallback}", want: "fallback", used: true},
		{in: "${EMPTY}", want: "", used: true},
		{in: "${A:-fallback}", want: "alpha", used: true},
		{in: "${UNSET:-}", want: "", used: true},
		{in: "${UNSET:-a, b: [c]}", want: "a, b: [c]", used: true},
		{in: "${UNSET:-cost $$5}", want: "cost $5", used: true},
		{in: "${YAML}", want: "x: y\n- z", used: true},
		{in: "${DOLLAR}", want: "${A}", used: true}, // values are never expanded again
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "$$$${A}", want: "$${A}"},
		{in: "$$${A}", want: "$alpha", used: true},
		{in: "pa$word", want: "pa$word"},
		{in: "^/api$", want: "^/api$"},
		{in: "$", want: "$"},
		{in: "a$ b", want: "a$ b"},
		{in: "${UNSET}", problems: []string{"${UNSET} is not set: set it, or give a default with ${UNSET:-value}"}},
		{in: "${UNSET} ${OTHER}", problems: []string{
			"${UNSET} is not set: set it, or give a default with ${UNSET:-value}",
			"${OTHER} is not set: set it, or give a default with ${OTHER:-value}",
		}},
		{in: "${}", problems: []string{msgBadRef}},
		{in: "${1A}", problems: []string{msgBadRef}},
		{in: "${A-b}", problems: []string{msgBadRef}},
		{in: "${A:=b}", problems: []string{msgBadRef}},
		{in: "${A", problems: []string{msgUnterminated}},
		{in: "${A:-b", problems: []string{msgUnterminated}},
		{in: "${A:-${B}}", problems: []string{"the default of ${A} may not hold a $: write $$ for a literal $"}},
		{in: "${A:-x$}", problems: []string{"the default of ${A} may not hold a $: write $$ for a literal $"}},
	}
	for _, tt := range tests {
		got, used, problems := expand(tt.in, lookup)
		if len(tt.problems) > 0 {
			if diff := cmp.Diff(tt.problems, problems); diff != "" {
				t.Errorf("expand(%q) problems (-want +got):\n%s", tt.in, diff)
			}
			continue
		}
		if got != tt.want || used != tt.used || len(problems) > 0 {
			t.Errorf("expand(%q) = %q, %v, %q; want %q, %v, none", tt.in, got, used, problems, tt.want, tt.used)
		}
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		in    string
		masks int
	}{
		{"keys: [${SESSION_KEY}]\n", 1},
		{"csrf: {header: X-CSRF, value: ${V:-1}}\n", 1},
		{"a: $${A}\n", 0},
		{"a: ${A:-x\n}\n", 0},              // a reference must fit on its line
		{"a: ${1}\n", 0},                   // not a reference: expand reports it
		{"cloakroomref0q: ${A} ${B}\n", 2}, // the file holds the first mask prefix
	}
	for _, tt := range tests {
		masked, m := mask([]byte(tt.in))
		if len(m.refs) != tt.masks {
			t.Errorf("mask(%q) masked %d references, want %d", tt.in, len(m.refs), tt.masks)
		}
		if tt.masks > 0 && strings.Contains(string(masked), "${") {
			t.Errorf("mask(%q) = %q still holds ${", tt.in, masked)
		}
		if got := m.restore(string(masked)); got != tt.in {
			t.Errorf("restore(mask(%q)) = %q", tt.in, got)
		}
	}
}

// fuzzEnv leaves names starting with U unset, gives names starting with E
// the empty string, and any other name a value with YAML and braces in it
// but no $.
func fuzzEnv(name string) (string, bool) {
	switch {
	case strings.HasPrefix(name, "U"):
		return "", false
	case strings.HasPrefix(name, "E"):
		return "", true
	}
	return "v:" + name + " }{\n- ]", true
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{
		"", "plain", "${A}", "${A:-d}", "${U:-d}", "${E:-d}", "$$", "$${A}", "${", "${}",
		"${A:-$$}", "${A:-${B}}", "$", "pa$word", "${A}${B}", "${A:-a, b: c}", "${U}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		expand(s, fuzzEnv)

		// Escaping every $ gives the text back, whatever it holds.
		if got, used, problems := expand(strings.ReplaceAll(s, "$", "$$"), fuzzEnv); got != s || used || len(problems) > 0 {
			t.Errorf("expand(escape(%q)) = %q, %v, %q; want the text back", s, got, used, problems)
		}

		// Without $$ and with values free of $, a successful expansion
		// leaves no ${ at all: no reference escapes expansion. Removing
		// every $$ leaves none, as runs of $ shrink to one or none.
		in := strings.ReplaceAll(s, "$$", "")
		if out, _, problems := expand(in, fuzzEnv); len(problems) == 0 && strings.Contains(out, "${") {
			t.Errorf("expand(%q) = %q holds an unexpanded reference", in, out)
		}

		// Masking for the parser loses nothing and leaves no reference.
		masked, m := mask([]byte(s))
		if got := m.restore(string(masked)); got != s {
			t.Errorf("restore(mask(%q)) = %q", s, got)
		}
	})
}
