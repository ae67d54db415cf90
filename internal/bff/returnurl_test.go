package bff

import (
	"net/url"
	"strings"
	"testing"
)

func TestLocalPath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want string
	}{
		{"", true, "/"},
		{"/", true, "/"},
		{"/app/orders?x=1#top", true, "/app/orders?x=1#top"},
		{"/%2e%2e/x", true, "/%2e%2e/x"}, // a path on our own origin
		{"//evil.example", false, ""},
		{`/\evil.example`, false, ""},
		{"/\t/evil.example", false, ""},
		{"/\n/evil.example", false, ""},
		{"/%2f/evil.example", false, ""},
		{"/%5Cevil.example", false, ""},
		{"https:evil.example", false, ""},
		{"https://evil.example", false, ""},
		{"javascript:alert(1)", false, ""},
		{"evil.example", false, ""},
		{" /x", false, ""},
		{"/x\u2028", false, ""},
		{"/\x7f", false, ""},
		{"/" + strings.Repeat("a", 3000), false, ""},
	} {
		got, ok := LocalPath(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("LocalPath(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzLocalPath: whatever is accepted resolves, against any base, to the
// base's own origin.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/", "//x", `/\x`, "/\t/x", "https:x", "/a?b#c", "/%2f%2fx", "/.//x"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://app.example/start/here")
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := LocalPath(v)
		if !ok {
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("accepted %q does not parse: %v", v, err)
		}
		r := base.ResolveReference(u)
		if r.Scheme != "https" || r.Host != "app.example" || r.User != nil {
			t.Fatalf("accepted %q leaves the origin: %s", v, r)
		}
		// Browsers treat backslashes as slashes and drop tabs and newlines.
		cleaned := strings.NewReplacer("\\", "/", "\t", "", "\n", "", "\r", "").Replace(got)
		if strings.HasPrefix(cleaned, "//") {
			t.Fatalf("accepted %q reads as a network path in a browser", v)
		}
	})
}
