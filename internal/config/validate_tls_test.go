package config

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/tlstest"
)

func TestValidateUpstreamTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "Config CA")
	client := ca.Client(t, "gateway")
	other := ca.Client(t, "other")
	expired := ca.Expired(t, "old")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyPEM, err := os.ReadFile(client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	garbage := write("garbage.pem", []byte("garbage-key-material"))
	badDER := write("bad-der.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage-key-material")}))
	missing := filepath.Join(dir, "missing.pem")

	// api puts a route with an https upstream on lines 9-12, its tls
	// settings from line 13 on.
	api := func(tls ...string) string {
		s := "apis:\n  - path: /api/\n    upstream: https://api.internal/\n    tls:\n"
		for _, l := range tls {
			s += "      " + l + "\n"
		}
		return edit(s)
	}
	pair := []string{"cert_file: " + client.CertFile, "key_file: " + client.KeyFile}
	tests := []struct {
		name string
		data string
		want []Problem
	}{
		{"everything", api(append([]string{"ca_file: " + ca.File}, append(pair, "server_name: orders.internal")...)...), nil},
		{"ca_file only", api("ca_file: " + ca.File), nil},
		{"client certificate only", api(pair...), nil},
		{"server_name IP", api("server_name: 10.0.0.7"), nil},
		{"server_name trailing dot", api("server_name: orders.internal."), nil},
		{"plain http upstream", strings.Replace(api("ca_file: "+ca.File), "https://api.internal/", "http://api.internal/", 1), []Problem{
			{Line: 12, Key: "apis[0].tls", Msg: "applies only to an https upstream: write apis[0].upstream as https://..., or remove tls"}}},
		{"empty", edit("apis:\n  - path: /api/\n    upstream: https://api.internal/\n    tls: {}\n"), []Problem{
			{Line: 12, Key: "apis[0].tls", Msg: "sets nothing", Warning: true}}},

		{"ca_file missing", api("ca_file: " + missing), []Problem{
			{Line: 13, Key: "apis[0].tls.ca_file", Msg: "cannot read the file: it does not exist"}}},
		{"ca_file not PEM", api("ca_file: " + garbage), []Problem{
			{Line: 13, Key: "apis[0].tls.ca_file", Msg: "holds no PEM certificate"}}},
		{"ca_file holds a key", api("ca_file: " + client.KeyFile), []Problem{
			{Line: 13, Key: "apis[0].tls.ca_file", Msg: `PEM block 1 is "PRIVATE KEY": a CA file holds certificates only`}}},
		{"ca_file certificate does not parse", api("ca_file: " + badDER), []Problem{
			{Line: 13, Key: "apis[0].tls.ca_file", Msg: "certificate 1 does not parse"}}},

		{"cert_file without key_file", api("cert_file: " + client.CertFile), []Problem{
			{Line: 13, Key: "apis[0].tls.cert_file", Msg: "needs key_file"}}},
		{"key_file without cert_file", api("key_file: " + client.KeyFile), []Problem{
			{Line: 13, Key: "apis[0].tls.key_file", Msg: "needs cert_file"}}},
		{"cert_file missing", api("cert_file: "+missing, "key_file: "+client.KeyFile), []Problem{
			{Line: 13, Key: "apis[0].tls.cert_file", Msg: "cannot read the file: it does not exist"}}},
		{"key_file missing", api("cert_file: "+client.CertFile, "key_file: "+missing), []Problem{
			{Line: 14, Key: "apis[0].tls.key_file", Msg: "cannot read the file: it does not exist"}}},
		{"files switched", api("cert_file: "+client.KeyFile, "key_file: "+client.CertFile), []Problem{
			{Line: 13, Key: "apis[0].tls.cert_file", Msg: "holds no PEM certificate first"}}},
		{"key_file of another certificate", api("cert_file: "+client.CertFile, "key_file: "+other.KeyFile), []Problem{
			{Line: 14, Key: "apis[0].tls.key_file", Msg: "is not the unencrypted PEM private key of cert_file's certificate: private key does not match public key"}}},
		{"key_file not PEM", api("cert_file: "+client.CertFile, "key_file: "+garbage), []Problem{
			{Line: 14, Key: "apis[0].tls.key_file", Msg: "is not the unencrypted PEM private key of cert_file's certificate"}}},
		{"certificate expired", api("cert_file: "+expired.CertFile, "key_file: "+expired.KeyFile), []Problem{
			{Line: 13, Key: "apis[0].tls.cert_file", Msg: "the certificate expired on", Warning: true}}},

		{"server_name with port", api("server_name: orders.internal:8443"), []Problem{
			{Line: 13, Key: "apis[0].tls.server_name", Msg: `"orders.internal:8443" is not a host name`}}},
		{"server_name URL", api("server_name: https://orders.internal"), []Problem{
			{Line: 13, Key: "apis[0].tls.server_name", Msg: "is not a host name"}}},
		{"server_name label", api("server_name: -orders.internal"), []Problem{
			{Line: 13, Key: "apis[0].tls.server_name", Msg: "is not a host name"}}},
		{"server_name empty label", api("server_name: orders..internal"), []Problem{
			{Line: 13, Key: "apis[0].tls.server_name", Msg: "is not a host name"}}},
		{"unknown key", api("ca: " + ca.File), []Problem{
			{Line: 12, Key: "apis[0].tls", Msg: "sets nothing", Warning: true},
			{Line: 13, Key: "apis[0].tls.ca", Msg: "unknown key; the keys under apis[0].tls are: ca_file, cert_file, key_file, server_name"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemsOf(t, tt.data, nil)
			checkProblems(t, sortedByKey(got), sortedByKey(tt.want))
			for _, p := range got {
				if strings.Contains(p.Msg, "garbage-key-material") || strings.Contains(p.Msg, "BEGIN PRIVATE") || strings.Contains(p.Msg, string(keyPEM[40:80])) {
					t.Errorf("problem shows a file's contents: %s", p.Msg)
				}
			}
		})
	}
}

func TestParseUpstreamTLS(t *testing.T) {
	data := edit("apis:\n  - path: /api/\n    upstream: https://10.0.0.7/\n    tls: {server_name: orders.internal}\n")
	cfg, err := Parse("cloakroom.yaml", []byte(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.APIs[0].TLS, (&UpstreamTLS{ServerName: "orders.internal"}); got == nil || *got != *want {
		t.Errorf("got tls %+v, want %+v", got, want)
	}
}
