package httpx_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cloakroom/cloakroom/internal/httpx"
)

func TestCheckDecodedPath(t *testing.T) {
	tests := []struct {
		raw  string // as in the request line; decoded once by url.ParseRequestURI
		want error
	}{
		{"/api/orders/recent", nil},
		{"/api/a%20b", nil},
		{"/api/caf%C3%A9", nil},
		{"/api/café", nil},
		{"/api/%ef%bc%8f", nil}, // fullwidth solidus: valid UTF-8, allowed
		{"/api/%ef%bc%8e%ef%bc%8e/x", nil},
		{"/api/%2520", nil},  // a literal "%20"
		{"/api/100%25", nil}, // a literal "%"
		{"/api/%25zz", nil},
		{"/api/%25C3%25A9", nil}, // double-encoded é: valid UTF-8 either way
		{"/api/%25%25", nil},
		{"/api/%25u00e9", nil},

		{"/api/%252e%252e/x", httpx.ErrPathDoubleEncoded},
		{"/api/%252E%252E%252F", httpx.ErrPathDoubleEncoded},
		{"/api/a%252fb", httpx.ErrPathDoubleEncoded},
		{"/api/a%255Cb", httpx.ErrPathDoubleEncoded},
		{"/api/a%2500b", httpx.ErrPathDoubleEncoded},
		{"/api/%25%32%65%25%32%65/x", httpx.ErrPathDoubleEncoded},
		{"/api/%25%32%45", httpx.ErrPathDoubleEncoded},
		{"/api/%25%35%63", httpx.ErrPathDoubleEncoded},
		{"/api/%25%25%33%32%25%36%35", httpx.ErrPathDoubleEncoded}, // %%32%65 once decoded, %2e twice
		{"/api/%25252e", httpx.ErrPathDoubleEncoded},               // triple
		{"/api/%25u002e%25u002e/x", httpx.ErrPathDoubleEncoded},
		{"/api/%25U002F", httpx.ErrPathDoubleEncoded},
		{"/api/%2525%2532%2565", httpx.ErrPathDoubleEncoded}, // %25%32%65 once decoded

		{"/api/%c0%ae%c0%ae/x", httpx.ErrPathNotUTF8},
		{"/api/%C0%AE", httpx.ErrPathNotUTF8},
		{"/api/%e0%80%ae", httpx.ErrPathNotUTF8},
		{"/api/%c0%af", httpx.ErrPathNotUTF8},
		{"/api/%c1%9c", httpx.ErrPathNotUTF8},
		{"/api/%e9", httpx.ErrPathNotUTF8}, // Latin-1 é
		{"/api/%ed%a0%80", httpx.ErrPathNotUTF8},
		{"/api/%25c0%25ae", httpx.ErrPathNotUTF8}, // overlong, double-encoded
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			u, err := url.ParseRequestURI(tt.raw)
			if err != nil {
				t.Fatalf("parse %q: %v", tt.raw, err)
			}
			if got := httpx.CheckDecodedPath(u.Path); !errors.Is(got, tt.want) {
				t.Errorf("CheckDecodedPath(%q) = %v, want %v", u.Path, got, tt.want)
			}
		})
	}
}

func TestCheckDecodedPathAllocs(t *testing.T) {
	for _, p := range []string{"/api/orders/recent", "/api/café/a b/x.json"} {
		if n := testing.AllocsPerRun(100, func() { _ = httpx.CheckDecodedPath(p) }); n != 0 {
			t.Errorf("CheckDecodedPath(%q): got %v allocations, want 0", p, n)
		}
	}
}

func BenchmarkCheckDecodedPath(b *testing.B) {
	for _, p := range []string{"/api/orders/recent", "/api/%252e%252e/x"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = httpx.CheckDecodedPath(p)
			}
		})
	}
}

func FuzzCheckDecodedPath(f *testing.F) {
	for _, s := range []string{"/a", "%2e", "%252e", "%c0%ae", "%25u002e", "%%32%65", "caf%C3%A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if httpx.CheckDecodedPath(p) != nil {
			return
		}
		// What passes decodes, however often, to valid UTF-8 with no more
		// dots, slashes, backslashes or NULs than it had.
		specials := func(s string) int {
			return strings.Count(s, ".") + strings.Count(s, "/") + strings.Count(s, "\\") + strings.Count(s, "\x00")
		}
		for q := p; ; {
			d, err := url.PathUnescape(q)
			if err != nil || d == q {
				break
			}
			if !utf8.ValidString(d) {
				t.Fatalf("CheckDecodedPath(%q) passed, but %q is not UTF-8", p, d)
			}
			if specials(d) > specials(q) {
				t.Fatalf("CheckDecodedPath(%q) passed, but %q decodes to %q", p, q, d)
			}
			q = d
		}
	})
}
