package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cloakroom/cloakroom/internal/tlstest"
)

// TestValidateClientAuth: the mutual TLS methods need the client
// certificate (of the main client, also for the service client); the
// certificate and its key go together and must match; secrets and keys
// the method does not use are warned about; private_key_file must be
// readable and not empty (its contents are parsed by the server's loader,
// which check runs too).
func TestValidateClientAuth(t *testing.T) {
	ca := tlstest.NewCA(t, "Config CA")
	cert, other := ca.Client(t, "gateway"), ca.Client(t, "other")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("\n \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const secret = "  client_secret: not-a-real-secret\n" // line 5
	// oidc replaces the secret on line 5 with lines (from line 5 on).
	oidc := func(extra string, lines ...string) string {
		s := ""
		for _, l := range lines {
			s += "  " + l + "\n"
		}
		return edit(extra, secret, s)
	}
	pair := []string{"client_certificate_file: " + cert.CertFile, "client_certificate_key_file: " + cert.KeyFile}
	with := func(lines ...string) []string { return append(append([]string(nil), lines...), pair...) }
	clientAPI := "apis:\n  - path: /api/\n    upstream: http://api.internal/\n    token: client\n"
	tests := []struct {
		name string
		data string
		want []Problem
	}{
		{"tls_client_auth", oidc("", with("client_auth: tls_client_auth")...), nil},
		{"self_signed_tls_client_auth", oidc("", with("client_auth: self_signed_tls_client_auth")...), nil},
		{"tls_client_auth without certificate", oidc("", "client_auth: tls_client_auth"), []Problem{
			{Line: 5, Key: "oidc.client_auth", Msg: "tls_client_auth needs the client certificate: set oidc.client_certificate_file and oidc.client_certificate_key_file"}}},
		{"tls_client_auth with a secret", edit("", secret, secret+"  client_auth: tls_client_auth\n  client_certificate_file: "+cert.CertFile+"\n  client_certificate_key_file: "+cert.KeyFile+"\n"), []Problem{
			{Line: 5, Key: "oidc.client_secret", Msg: "is not used with client_auth tls_client_auth: remove it", Warning: true}}},
		{"certificate with a secret: certificate-bound tokens", edit("", secret, secret+"  client_certificate_file: "+cert.CertFile+"\n  client_certificate_key_file: "+cert.KeyFile+"\n"), nil},
		{"certificate without key", oidc("", "client_auth: tls_client_auth", "client_certificate_file: "+cert.CertFile), []Problem{
			{Line: 6, Key: "oidc.client_certificate_file", Msg: "needs client_certificate_key_file, the certificate's private key: set both, or neither"}}},
		{"key without certificate", oidc("", "client_auth: tls_client_auth", "client_certificate_key_file: "+cert.KeyFile), []Problem{
			{Line: 6, Key: "oidc.client_certificate_key_file", Msg: "needs client_certificate_file, the client certificate: set both, or neither"}}},
		{"key of another certificate", oidc("", "client_auth: tls_client_auth", "client_certificate_file: "+cert.CertFile, "client_certificate_key_file: "+other.KeyFile), []Problem{
			{Line: 7, Key: "oidc.client_certificate_key_file", Msg: "is not the unencrypted PEM private key of client_certificate_file's certificate: private key does not match public key"}}},
		{"certificate missing", oidc("", "client_auth: tls_client_auth", "client_certificate_file: "+filepath.Join(dir, "nope.crt"), "client_certificate_key_file: "+cert.KeyFile), []Problem{
			{Line: 6, Key: "oidc.client_certificate_file", Msg: "cannot read the file: it does not exist"}}},
		{"certificate file holds a key", oidc("", "client_auth: tls_client_auth", "client_certificate_file: "+cert.KeyFile, "client_certificate_key_file: "+cert.KeyFile), []Problem{
			{Line: 6, Key: "oidc.client_certificate_file", Msg: "holds no PEM certificate first"}}},
		{"private_key_jwt empty key file", oidc("", "client_auth: private_key_jwt", "private_key_file: "+empty), []Problem{
			{Line: 6, Key: "oidc.private_key_file", Msg: "is empty: put the PEM private key, or a JWK or JWKS, in it"}}},
		{"private_key_jwt with certificate (Entra ID)", oidc("", with("client_auth: private_key_jwt", "private_key_file: "+cert.KeyFile)...), nil},
		{"private key with tls_client_auth", oidc("", with("client_auth: tls_client_auth", "private_key_file: "+cert.KeyFile)...), []Problem{
			{Line: 6, Key: "oidc.private_key_file", Msg: "is used only with client_auth private_key_jwt: remove it", Warning: true}}},
		{"assertion audience endpoint", oidc("", "client_auth: private_key_jwt", "private_key_file: "+cert.KeyFile, "client_assertion_audience: endpoint"), nil},
		{"assertion audience unknown", oidc("", "client_auth: private_key_jwt", "private_key_file: "+cert.KeyFile, "client_assertion_audience: token"), []Problem{
			{Line: 7, Key: "oidc.client_assertion_audience", Msg: `"token" is not an audience: use issuer (the default) or endpoint`}}},
		{"assertion audience without private_key_jwt", edit("", secret, secret+"  client_assertion_audience: endpoint\n"), []Problem{
			{Line: 6, Key: "oidc.client_assertion_audience", Msg: "is used only with client_auth private_key_jwt: remove it", Warning: true}}},
		{"assertion audience endpoint with fapi2", oidc("", "client_auth: private_key_jwt", "private_key_file: "+cert.KeyFile, "client_assertion_audience: endpoint", "dpop: true", "profile: fapi2"), []Problem{
			{Line: 7, Key: "oidc.client_assertion_audience", Msg: "profile fapi2 requires the issuer as the audience of client assertions"}}},
		{"service client tls_client_auth with the main certificate", edit(clientAPI, secret, secret+"  client_certificate_file: "+cert.CertFile+"\n  client_certificate_key_file: "+cert.KeyFile+"\n  service_client:\n    client_id: svc\n    client_auth: tls_client_auth\n"), nil},
		{"service client tls_client_auth without certificate", edit(clientAPI, secret, secret+"  service_client:\n    client_id: svc\n    client_auth: self_signed_tls_client_auth\n"), []Problem{
			{Line: 8, Key: "oidc.service_client.client_auth", Msg: "self_signed_tls_client_auth needs the client certificate: set oidc.client_certificate_file and oidc.client_certificate_key_file"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, sortedByKey(problemsOf(t, tt.data, nil)), sortedByKey(tt.want))
		})
	}
}
