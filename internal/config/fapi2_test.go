package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/tlstest"
	"github.com/google/go-cmp/cmp"
)

// writeECKey writes a P-256 private key as PKCS#8 PEM and returns its path.
func writeECKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "client.key")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPARAndFAPI2Profile(t *testing.T) {
	key := writeECKey(t)
	cert := tlstest.NewCA(t, "FAPI CA").Client(t, "web")
	certLines := []string{"client_certificate_file: " + cert.CertFile, "client_certificate_key_file: " + cert.KeyFile}
	const secret = "  client_secret: not-a-real-secret\n" // line 5
	// oidc returns minimal with line 5 replaced by lines (each indented
	// two spaces, from line 5).
	oidc := func(lines ...string) string {
		s := ""
		for _, l := range lines {
			s += "  " + l + "\n"
		}
		return edit("", secret, s)
	}
	jwt := []string{"client_auth: private_key_jwt", "private_key_file: " + key}
	with := func(lines ...string) []string { return append(append([]string(nil), jwt...), lines...) }
	tests := []struct {
		name string
		data string
		want []Problem
		par  string // when there is no problem
	}{
		{"par default", minimal, nil, "auto"},
		{"par required", edit("", secret, secret+"  par: required\n"), nil, "required"},
		{"par off", edit("", secret, secret+"  par: off\n"), nil, "off"},
		{"par unknown", edit("", secret, secret+"  par: always\n"), []Problem{
			{Line: 6, Key: "oidc.par", Msg: `"always" is not a PAR mode: use auto, required or off`}}, ""},
		{"profile unknown", edit("", secret, secret+"  profile: fapi1\n"), []Problem{
			{Line: 6, Key: "oidc.profile", Msg: `"fapi1" is not a profile: use fapi2, or remove it`}}, ""},

		{"fapi2 with private_key_jwt and dpop", oidc(with("dpop: true", "profile: fapi2")...), nil, "auto"},
		{"fapi2 with tls_client_auth: certificate-bound tokens", oidc(append([]string{"client_auth: tls_client_auth"}, append(certLines, "profile: fapi2")...)...), nil, "auto"},
		{"fapi2 with self_signed_tls_client_auth", oidc(append([]string{"client_auth: self_signed_tls_client_auth"}, append(certLines, "profile: fapi2")...)...), nil, "auto"},
		{"fapi2 with private_key_jwt and a client certificate", oidc(with(append(certLines, "profile: fapi2")...)...), nil, "auto"},
		{"fapi2 with par required", oidc(with("dpop: true", "par: required", "profile: fapi2")...), nil, "required"},
		{"fapi2 with the defaults", edit("", secret, secret+"  profile: fapi2\n"), []Problem{
			{Line: 6, Key: "oidc.profile", Msg: `profile fapi2 requires client_auth private_key_jwt, tls_client_auth or self_signed_tls_client_auth, not "client_secret_basic"`},
			{Line: 6, Key: "oidc.profile", Msg: "profile fapi2 requires sender-constrained tokens: set oidc.dpop: true, or set client_certificate_file for certificate-bound tokens (RFC 8705)"},
		}, ""},
		{"fapi2 with each violation written", oidc("client_secret: not-a-real-secret", "client_auth: client_secret_post", "par: off", "dpop: false", "profile: fapi2"), []Problem{
			{Line: 6, Key: "oidc.client_auth", Msg: `profile fapi2 requires client_auth private_key_jwt, tls_client_auth or self_signed_tls_client_auth, not "client_secret_post"`},
			{Line: 7, Key: "oidc.par", Msg: "off is not allowed with profile fapi2, which requires pushed authorization requests (RFC 9126): use required or auto"},
			{Line: 8, Key: "oidc.dpop", Msg: "profile fapi2 requires sender-constrained tokens"},
		}, ""},
		{"fapi2 without dpop", oidc(with("profile: fapi2")...), []Problem{
			{Line: 7, Key: "oidc.profile", Msg: "profile fapi2 requires sender-constrained tokens"}}, ""},
		{"fapi2 service client with a secret", oidc(with("dpop: true", "profile: fapi2", "service_client: {client_id: api-caller, client_secret: s}")...) +
			"apis:\n  - path: /api/\n    upstream: https://api.internal/\n    token: client\n", []Problem{
			{Line: 9, Key: "oidc.service_client", Msg: `requires client_auth private_key_jwt, tls_client_auth or self_signed_tls_client_auth for the service client too, not "client_secret_basic"`}}, ""},
		{"fapi2 service client client_auth", oidc(with("dpop: true", "profile: fapi2", "service_client:", "  client_id: api-caller", "  client_secret: s", "  client_auth: client_secret_post")...) +
			"apis:\n  - path: /api/\n    upstream: https://api.internal/\n    token: client\n", []Problem{
			{Line: 12, Key: "oidc.service_client.client_auth", Msg: `for the service client too, not "client_secret_post"`}}, ""},
		{"fapi2 on localhost over http", strings.NewReplacer("https://app.example.com", "http://localhost:8080", "https://idp.example.com", "http://localhost:8081").Replace(oidc(with("dpop: true", "profile: fapi2")...)), []Problem{
			{Line: 1, Key: "public_url", Msg: "uses plain http, which profile fapi2 does not allow", Warning: true},
			{Line: 3, Key: "oidc.issuer", Msg: "uses plain http, which profile fapi2 does not allow", Warning: true},
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, problemsOf(t, tc.data, nil), tc.want)
			if tc.par == "" {
				return
			}
			cfg, err := Parse("cloakroom.yaml", []byte(tc.data), nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.OIDC.PAR != tc.par {
				t.Errorf("par %q, want %q", cfg.OIDC.PAR, tc.par)
			}
		})
	}
}

// TestGoldenFAPI2 is the check output of a configuration that names the
// FAPI 2.0 profile and breaks it in every way a file can.
func TestGoldenFAPI2(t *testing.T) {
	t.Chdir("testdata")
	_, err := Load("fapi2.yaml", env(map[string]string{"OIDC_CLIENT_SECRET": "env-secret-value"}))
	if err == nil {
		t.Fatal("fapi2.yaml loaded")
	}
	got := err.Error() + "\n"
	const golden = "check-fapi2.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("Error() (-%s +got):\n%s", golden, diff)
	}
	if strings.Contains(got, "env-secret-value") {
		t.Error("problems print the client secret")
	}
}
