package aggregate

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzTemplateValue puts any value into a path and a query position and
// checks the URL: same host, one path segment that decodes to the value,
// the query holding exactly the template's parameters.
func FuzzTemplateValue(f *testing.F) {
	for _, s := range []string{"plain", "../../admin", "a/b", "%2F", "a&b=c", "a#b", "?x=1", "..", ".", `a\b`,
		"\x00", "é", "http://evil/", "@evil", "a;b", "a b+c", "%252e%252e", "//x", "a/./b"} {
		f.Add(s)
	}
	base, _ := url.Parse("http://api.internal/v1/?tenant=t")
	p, err := newPart(Part{Name: "p", Upstream: base, Path: "items/{query.x}/detail?q={query.x}&n=1"}, map[string]int{"p": 0}, nil)
	if err != nil {
		f.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	f.Fuzz(func(t *testing.T, v string) {
		target, fail := p.target(&call{r: r, query: url.Values{"x": {v}}})
		if fail != nil {
			if fail.status != 400 {
				t.Fatalf("value %q: failure %+v, want 400", v, fail)
			}
			return
		}
		u, err := url.Parse(target)
		if err != nil {
			t.Fatalf("value %q: target %q does not parse: %v", v, target, err)
		}
		if u.Scheme != "http" || u.Host != "api.internal" || u.User != nil || u.Fragment != "" {
			t.Fatalf("value %q: target %q changed the origin", v, target)
		}
		segs := strings.Split(u.EscapedPath(), "/")
		if len(segs) != 5 || segs[1] != "v1" || segs[2] != "items" || segs[4] != "detail" {
			t.Fatalf("value %q: path %q, want /v1/items/<one segment>/detail", v, u.EscapedPath())
		}
		if got, err := url.PathUnescape(segs[3]); err != nil || got != v {
			t.Fatalf("value %q: segment %q decodes to %q, %v", v, segs[3], got, err)
		}
		if err := checkDecodedPath(u.Path); err != nil {
			t.Fatalf("value %q: decoded path %q: %v", v, u.Path, err)
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil || len(q) != 3 || q.Get("tenant") != "t" || q.Get("n") != "1" || len(q["q"]) != 1 || q.Get("q") != v {
			t.Fatalf("value %q: query %q parses to %v, %v", v, u.RawQuery, q, err)
		}
	})
}

// FuzzParseTemplate checks that any template New accepts, expanded with
// plain values, stays under the upstream's path.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"me", "users/{claims.sub}/orders?limit={query.limit}", "a/../b", "/x", "{", "}", "a#b",
		"%2e%2e/x", "x?%zz", "{parts.p.a.0}", "{path.id}.json", "a//b", "?only=query"} {
		f.Add(s)
	}
	base, _ := url.Parse("http://api.internal/v1/")
	r := httptest.NewRequest("GET", "/", nil)
	r.SetPathValue("id", "7")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := newPart(Part{Name: "q", Upstream: base, Path: s}, map[string]int{"p": 0, "q": 1}, nil)
		if err != nil {
			return
		}
		c := &call{r: r, query: url.Values{}, claims: map[string]any{}, results: []result{{val: map[string]any{}}}}
		for _, pcs := range [][]piece{p.tmpl.path, p.tmpl.query} {
			for _, pc := range pcs {
				switch pc.src {
				case fromClaims:
					c.claims[pc.text] = "v"
				case fromQuery:
					c.query.Set(pc.text, "v")
				case fromPart:
					c.results[0].val = map[string]any{pc.field[0]: "v"}
				}
			}
		}
		target, fail := p.target(c)
		if fail != nil {
			return
		}
		u, err := url.Parse(target)
		if err != nil {
			t.Fatalf("template %q: target %q does not parse: %v", s, target, err)
		}
		if u.Host != "api.internal" || u.Fragment != "" || !strings.HasPrefix(u.Path, "/v1/") || checkDecodedPath(u.Path) != nil {
			t.Fatalf("template %q: target %q leaves the upstream", s, target)
		}
	})
}
