package server

import (
	"testing"

	"github.com/cloakroom/cloakroom/internal/config"
)

func TestSameACMEHosts(t *testing.T) {
	acme := &config.TLS{ACME: &config.ACME{Storage: "/var/lib/cloakroom/acme", AgreeTOS: true}}
	files := &config.TLS{CertFile: "tls.crt", KeyFile: "tls.key"}
	one := func(tls *config.TLS, url string) *config.Config {
		return &config.Config{TLS: tls, PublicURL: url}
	}
	tests := []struct {
		name     string
		old, new *config.Config
		want     bool
	}{
		{"no tls", one(nil, "https://a.example"), one(nil, "https://b.example"), true},
		{"files: hosts may change", one(files, "https://a.example"), one(files, "https://b.example"), true},
		{"acme: same host, other port", one(acme, "https://a.example"), one(acme, "https://A.example:8443"), true},
		{"acme: another host", one(acme, "https://a.example"), one(acme, "https://b.example"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameACMEHosts(tt.old, tt.new); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
