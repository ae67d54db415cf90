package server

import (
	"fmt"
	"net/http/httptest"
	"testing"
)

// BenchmarkFrontendMatch is the cost of matching a request to its
// frontend (frontendSet.match), which runs on every request: one frontend
// (a config without frontends:), and 20 on one host where the request is
// for the frontend at /, compared with the 19 longer paths first, the
// most matching does; also 20 on hosts of their own. The load benchmark's
// small-20fe scenario measures the whole request (BENCHMARKS.md).
func BenchmarkFrontendMatch(b *testing.B) {
	onHost := func(n int) []*frontend {
		list := make([]*frontend, n)
		for i := range n - 1 {
			list[i] = &frontend{name: fmt.Sprintf("f%02d", i+1), host: "localhost:8080", path: fmt.Sprintf("/f%02d/", i+1)}
		}
		list[n-1] = &frontend{name: "main", host: "localhost:8080", path: "/"}
		return list
	}
	onHosts := func(n int) []*frontend {
		list := make([]*frontend, n)
		for i := range n {
			list[i] = &frontend{name: fmt.Sprintf("f%02d", i+1), host: fmt.Sprintf("f%02d.localhost:8080", i+1), path: "/"}
		}
		return list
	}
	for _, c := range []struct {
		name, host string
		list       []*frontend
		want       string
	}{
		{"1", "localhost:8080", onHost(1), "main"},
		{"20-by-path", "localhost:8080", onHost(20), "main"},
		{"20-by-host", "f20.localhost:8080", onHosts(20), "f20"},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := newFrontendSet(c.list)
			r := httptest.NewRequest("GET", "http://"+c.host+"/api/small", nil)
			if f, ok := s.match(r); !ok || f == nil || f.name != c.want {
				b.Fatalf("matched %v (%v), want %s", f, ok, c.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.match(r)
			}
		})
	}
}
