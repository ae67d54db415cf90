package spa

import "testing"

func TestAddConnectSources(t *testing.T) {
	tests := []struct {
		name, policy string
		sources      []string
		want         string
	}{
		{"default policy", DefaultCSP, []string{"https://orders.example.com", "http://127.0.0.1:8081"},
			"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; connect-src 'self' https://orders.example.com http://127.0.0.1:8081; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"},
		{"none", DefaultCSP, nil, DefaultCSP},
		{"duplicates once", "connect-src 'self' https://a.example", []string{"https://a.example", "https://b.example", "https://b.example"},
			"connect-src 'self' https://a.example https://b.example"},
		{"no connect-src", "default-src 'self';", []string{"https://a.example"}, "default-src 'self'; connect-src 'self' https://a.example"},
		{"directive name in any case", "default-src 'none'; Connect-Src 'self'", []string{"https://a.example"}, "default-src 'none'; Connect-Src 'self' https://a.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AddConnectSources(tt.policy, tt.sources...); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
