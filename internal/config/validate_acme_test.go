package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cloakroom/cloakroom/internal/tlstest"
)

func TestValidateACME(t *testing.T) {
	ca := tlstest.NewCA(t, "Private ACME CA")
	server := ca.Server(t, "app.example.com")
	storage := t.TempDir()
	notDir := filepath.Join(storage, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// acme puts tls: on line 9, acme: on 10, its keys from line 11 on.
	acme := func(keys ...string) string {
		s := "tls:\n  acme:\n"
		for _, k := range keys {
			s += "    " + k + "\n"
		}
		return s
	}
	good := []string{"email: ops@example.com", "storage: " + storage, "agree_tos: true"}
	with := func(keys ...string) []string { return append(append([]string{}, good...), keys...) }
	tests := []struct {
		name string
		data string
		want []Problem
	}{
		{"minimal", edit(acme(good...)), nil},
		{"with redirect, CA and root", edit(acme(with("ca: https://ca.internal/acme/acme/directory", "ca_root: "+ca.File)...) + `  redirect_http: ":80"` + "\n"), nil},
		{"flow mapping as in the SPEC", edit("tls:\n  acme: {email: ops@example.com, ca: https://acme-v02.api.letsencrypt.org/directory, storage: " + storage + ", agree_tos: true}\n"), nil},
		{"agree_tos false", edit(acme("email: ops@example.com", "storage: "+storage, "agree_tos: false")), []Problem{
			{Line: 13, Key: "tls.acme.agree_tos", Msg: "must be true"}}},
		{"agree_tos missing", edit(acme("email: ops@example.com", "storage: "+storage)), []Problem{
			{Line: 0, Key: "tls.acme.agree_tos", Msg: "must be true"}}},
		{"storage missing", edit(acme("email: ops@example.com", "agree_tos: true")), []Problem{
			{Line: 0, Key: "tls.acme.storage", Msg: "required"}}},
		{"storage a file", edit(acme("email: ops@example.com", "storage: "+notDir, "agree_tos: true")), []Problem{
			{Line: 12, Key: "tls.acme.storage", Msg: "is not a directory"}}},
		{"no email", edit(acme("storage: "+storage, "agree_tos: true")), []Problem{
			{Line: 0, Key: "tls.acme.email", Msg: "is not set", Warning: true}}},
		{"bad email", edit(acme("email: ops", "storage: "+storage, "agree_tos: true")), []Problem{
			{Line: 11, Key: "tls.acme.email", Msg: `"ops" is not an email address`}}},
		{"http CA", edit(acme(with("ca: http://ca.example.com/directory")...)), []Problem{
			{Line: 14, Key: "tls.acme.ca", Msg: "use https"}}},
		{"http CA on localhost", edit(acme(with("ca: http://localhost:14000/dir")...)), nil},
		{"CA not a URL", edit(acme(with("ca: letsencrypt")...)), []Problem{
			{Line: 14, Key: "tls.acme.ca", Msg: "is not an absolute http(s) URL"}}},
		{"ca_root missing", edit(acme(with("ca_root: " + filepath.Join(storage, "none.pem"))...)), []Problem{
			{Line: 14, Key: "tls.acme.ca_root", Msg: "cannot read the file: it does not exist"}}},
		{"ca_root a key", edit(acme(with("ca_root: " + server.KeyFile)...)), []Problem{
			{Line: 14, Key: "tls.acme.ca_root", Msg: "holds"}}},
		{"localhost public_url", edit(acme(good...), "https://app.example.com", "https://app.localhost:8443"), []Problem{
			{Line: 10, Key: "tls.acme", Msg: "cannot get a certificate for app.localhost, the host of public_url"}}},
		{"IP public_url", edit(acme(good...), "https://app.example.com", "https://192.0.2.10"), []Problem{
			{Line: 10, Key: "tls.acme", Msg: "cannot get a certificate for 192.0.2.10"}}},
		{"with files", edit(acme(good...) + "  cert_file: " + server.CertFile + "\n  key_file: " + server.KeyFile + "\n"), []Problem{
			{Line: 9, Key: "tls", Msg: "sets both cert_file/key_file and acme"}}},
		{"unknown key", edit(acme(with("staging: true")...)), []Problem{
			{Line: 14, Key: "tls.acme.staging", Msg: "unknown key"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, sortedByKey(problemsOf(t, tt.data, nil)), sortedByKey(tt.want))
		})
	}
}

// TestValidateACMEFrontends: every frontend's host must be one a CA can
// validate.
func TestValidateACMEFrontends(t *testing.T) {
	data := `tls:
  acme: {email: ops@example.com, storage: ` + t.TempDir() + `, agree_tos: true}
oidc:
  issuer: https://idp.example.com
  client_id: web
  client_secret: not-a-real-secret
session:
  store: memory
  keys: [0123456789abcdef0123456789abcdef]
frontends:
  - name: shop
    public_url: https://shop.example.com
  - name: dev
    public_url: https://127.0.0.1:8443
`
	checkProblems(t, problemsOf(t, data, nil), []Problem{
		{Line: 2, Key: "tls.acme", Msg: "cannot get a certificate for 127.0.0.1, the host of frontends[1].public_url"},
	})
}

func TestParseACME(t *testing.T) {
	storage := t.TempDir()
	data := edit("tls: {acme: {email: ops@example.com, ca: https://ca.example.com/dir, ca_root: /etc/ca.pem, storage: " + storage + ", agree_tos: true}, redirect_http: \":80\"}\n")
	cfg, err := Parse("cloakroom.yaml", []byte(data), nil)
	if err == nil {
		t.Fatal("ca_root /etc/ca.pem should not exist")
	}
	data = edit("tls: {acme: {email: ops@example.com, ca: https://ca.example.com/dir, storage: " + storage + ", agree_tos: true}, redirect_http: \":80\"}\n")
	if cfg, err = Parse("cloakroom.yaml", []byte(data), nil); err != nil {
		t.Fatal(err)
	}
	want := ACME{Email: "ops@example.com", CA: "https://ca.example.com/dir", Storage: storage, AgreeTOS: true}
	if cfg.TLS.ACME == nil || *cfg.TLS.ACME != want || cfg.TLS.RedirectHTTP != ":80" {
		t.Errorf("got tls %+v acme %+v, want acme %+v and redirect_http :80", cfg.TLS, cfg.TLS.ACME, want)
	}
}
