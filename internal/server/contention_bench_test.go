package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/server"
)

// parallelRequests is how many requests BenchmarkProxyParallel keeps in
// flight at once.
const parallelRequests = 256

// BenchmarkProxyParallel is BenchmarkProxy's "cloakroom" call made by 256
// goroutines at once, on each session store, to show where concurrent
// requests wait for each other. Every goroutine sends authenticated API
// calls with the same session through the whole chain to a real upstream
// over loopback. The access log is on, as `cloakroom serve` has it (JSON
// at info level), but written to io.Discard.
//
// Its ns/op is wall time over all goroutines, so it falls as throughput
// rises. Run it with -mutexprofile and -blockprofile to see the contended
// locks (go test sets both profile rates to 1 for those flags); see
// BENCHMARKS.md.
func BenchmarkProxyParallel(b *testing.B) {
	for _, st := range []struct {
		name string
		spec func(b *testing.B) string
	}{
		{"memory", func(*testing.B) string { return "memory" }},
		{"file", func(b *testing.B) string { return "file:" + b.TempDir() + "/sessions.db" }},
		// Fails rather than skips when CLOAKROOM_REQUIRE_INTEGRATION or CI
		// is set and redis-server is missing.
		{"redis", func(b *testing.B) string { return redistest.Start(b).URL }},
	} {
		b.Run(st.name, func(b *testing.B) {
			store := st.spec(b)
			up := benchUpstream(b)
			log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
			public, handler, cookie := benchGateway(b, up.URL, server.Options{Logger: log},
				func(c *config.Config) { c.Session.Store = store })
			procs := runtime.GOMAXPROCS(0)
			perProc := (parallelRequests + procs - 1) / procs
			b.SetParallelism(perProc)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest(http.MethodGet, public+"/api/orders/recent", nil)
					r.Header.Set("X-CSRF", "1")
					r.AddCookie(cookie)
					rec := httptest.NewRecorder()
					handler.ServeHTTP(rec, r)
					if rec.Code != http.StatusOK {
						b.Errorf("status %d: %s", rec.Code, rec.Body)
						return
					}
				}
			})
			b.ReportMetric(float64(perProc*procs), "goroutines")
		})
	}
}
