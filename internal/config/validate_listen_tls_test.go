package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/tlstest"
)

func TestValidateListenTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "Config CA")
	server := ca.Server(t, "app.example.com")
	other := ca.Server(t, "app.example.com")
	wrongName := ca.Server(t, "elsewhere.example.com")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyPEM, err := os.ReadFile(server.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	garbage := write("garbage.pem", []byte("garbage-key-material"))
	missing := filepath.Join(dir, "missing.pem")

	// section puts tls: on line 9, its keys from line 10 on.
	section := func(keys ...string) string {
		s := "tls:\n"
		for _, k := range keys {
			s += "  " + k + "\n"
		}
		return s
	}
	pair := []string{"cert_file: " + server.CertFile, "key_file: " + server.KeyFile}
	tlsFile := func(keys ...string) string { return edit(section(keys...)) }
	tests := []struct {
		name string
		data string
		want []Problem
	}{
		{"files", tlsFile(pair...), nil},
		{"files and redirect", tlsFile(append(pair, `redirect_http: ":80"`)...), nil},
		{"localhost over https", edit(section(pair...), "https://app.example.com", "https://localhost:8443"), []Problem{
			{Line: 10, Key: "tls.cert_file", Msg: "the certificate is not for localhost, the host of public_url", Warning: true}}},
		{"empty", edit("tls:\n"), []Problem{
			{Line: 9, Key: "tls", Msg: "is empty: set cert_file and key_file"}}},
		{"empty mapping", edit("tls: {}\n"), []Problem{
			{Line: 9, Key: "tls", Msg: "sets no certificate: set cert_file and key_file"}}},
		{"redirect_http alone", tlsFile(`redirect_http: ":80"`), []Problem{
			{Line: 9, Key: "tls", Msg: "sets only redirect_http"}}},
		{"cert_file without key_file", tlsFile("cert_file: " + server.CertFile), []Problem{
			{Line: 10, Key: "tls.cert_file", Msg: "needs key_file"}}},
		{"key_file without cert_file", tlsFile("key_file: " + server.KeyFile), []Problem{
			{Line: 10, Key: "tls.key_file", Msg: "needs cert_file"}}},
		{"cert_file missing", tlsFile("cert_file: "+missing, "key_file: "+server.KeyFile), []Problem{
			{Line: 10, Key: "tls.cert_file", Msg: "cannot read the file: it does not exist"}}},
		{"key_file missing", tlsFile("cert_file: "+server.CertFile, "key_file: "+missing), []Problem{
			{Line: 11, Key: "tls.key_file", Msg: "cannot read the file: it does not exist"}}},
		{"files switched", tlsFile("cert_file: "+server.KeyFile, "key_file: "+server.CertFile), []Problem{
			{Line: 10, Key: "tls.cert_file", Msg: "holds no PEM certificate first"}}},
		{"key_file of another certificate", tlsFile("cert_file: "+server.CertFile, "key_file: "+other.KeyFile), []Problem{
			{Line: 11, Key: "tls.key_file", Msg: "is not the unencrypted PEM private key of cert_file's certificate: private key does not match public key"}}},
		{"key_file not PEM", tlsFile("cert_file: "+server.CertFile, "key_file: "+garbage), []Problem{
			{Line: 11, Key: "tls.key_file", Msg: "is not the unencrypted PEM private key"}}},
		{"certificate for another host", tlsFile("cert_file: "+wrongName.CertFile, "key_file: "+wrongName.KeyFile), []Problem{
			{Line: 10, Key: "tls.cert_file", Msg: "the certificate is not for app.example.com, the host of public_url", Warning: true}}},
		{"http public_url on localhost", edit(section(pair...), "https://app.example.com", "http://localhost:8080"), []Problem{
			{Line: 1, Key: "public_url", Msg: "is http, but tls makes the gateway serve https: write https://localhost:8080"},
			{Line: 10, Key: "tls.cert_file", Msg: "the certificate is not for localhost", Warning: true}}},
		{"redirect_http is listen", edit("listen: :8443\n" + section(append(pair, `redirect_http: ":8443"`)...)), []Problem{
			{Line: 13, Key: "tls.redirect_http", Msg: "is the address of listen: give it its own port"}}},
		{"redirect_http on listen's port", edit("listen: 127.0.0.1:8443\n" + section(append(pair, `redirect_http: ":8443"`)...)), []Problem{
			{Line: 13, Key: "tls.redirect_http", Msg: "is the address of listen"}}},
		{"redirect_http is admin_listen", edit("admin_listen: 127.0.0.1:9090\n" + section(append(pair, `redirect_http: "127.0.0.1:9090"`)...)), []Problem{
			{Line: 13, Key: "tls.redirect_http", Msg: "is the address of admin_listen"}}},
		{"redirect_http not host:port", tlsFile(append(pair, "redirect_http: http://x/")...), []Problem{
			{Line: 12, Key: "tls.redirect_http", Msg: `"http://x/" has no port number`}}},
		{"unknown key", tlsFile(append(pair, "cert: x")...), []Problem{
			{Line: 12, Key: "tls.cert", Msg: "unknown key; the keys under tls are:"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemsOf(t, tt.data, nil)
			checkProblems(t, sortedByKey(got), sortedByKey(tt.want))
			for _, p := range got {
				if strings.Contains(p.Msg, "garbage-key-material") || strings.Contains(p.Msg, "BEGIN") || strings.Contains(p.Msg, string(keyPEM[40:80])) {
					t.Errorf("problem shows a file's contents: %s", p.Msg)
				}
			}
		})
	}
}

// TestValidateListenTLSFrontends: with frontends, every frontend's
// public_url must be https, and the certificate should name every host.
func TestValidateListenTLSFrontends(t *testing.T) {
	ca := tlstest.NewCA(t, "Config CA")
	server := ca.Server(t, "shop.example.com")
	data := `tls:
  cert_file: ` + server.CertFile + `
  key_file: ` + server.KeyFile + `
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
    public_url: http://dev.localhost:8080
`
	checkProblems(t, problemsOf(t, data, nil), []Problem{
		{Line: 2, Key: "tls.cert_file", Msg: "the certificate is not for dev.localhost, the host of frontends[1].public_url", Warning: true},
		{Line: 15, Key: "frontends[1].public_url", Msg: "is http, but tls makes the gateway serve https"},
	})
}

func TestParseListenTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "Config CA")
	server := ca.Server(t, "app.example.com")
	data := edit("tls: {cert_file: " + server.CertFile + ", key_file: " + server.KeyFile + ", redirect_http: \":80\"}\n")
	cfg, err := Parse("cloakroom.yaml", []byte(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *cfg.TLS, (TLS{CertFile: server.CertFile, KeyFile: server.KeyFile, RedirectHTTP: ":80"}); got != want {
		t.Errorf("got tls %+v, want %+v", got, want)
	}
}
