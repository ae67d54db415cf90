package csrf_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloakroom/cloakroom/internal/csrf"
)

// BenchmarkChecks is what every API call pays at the edge: security
// headers, CORS (same origin only), net/http's cross-origin protection and
// the CSRF header check, for a same-origin GET and POST that pass.
func BenchmarkChecks(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	check := csrf.New("X-CSRF", "1")
	inner := check.RequireAPI("https://app.example", false, ok)
	co, err := csrf.CrossOrigin(nil, inner)
	if err != nil {
		b.Fatal(err)
	}
	h := csrf.SecurityHeaders(true, csrf.CORS(nil, check.Header(), co))
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r := httptest.NewRequest(method, "https://app.example/api/orders", nil)
		r.Header.Set("X-CSRF", "1")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.Header.Set("Origin", "https://app.example")
		b.Run(method, func(b *testing.B) {
			b.ReportAllocs()
			w := httptest.NewRecorder()
			for b.Loop() {
				clear(w.Header())
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
