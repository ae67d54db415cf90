package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServiceClient(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	secretFile := filepath.Join(dir, "secret")
	emptyFile := filepath.Join(dir, "empty")
	for name, body := range map[string]string{keyFile: "pem", secretFile: "service-file-secret\r\n", emptyFile: "\n"} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const (
		secret = "  client_secret: not-a-real-secret\n" // line 5
		// client routes are at lines 12-15 when service_client has three lines
		clientAPI   = "apis:\n  - path: /api/\n    upstream: http://api.internal/\n    token: client\n"
		userAPI     = "apis:\n  - path: /api/\n    upstream: http://api.internal/\n"
		partClient  = userAPI + "composites:\n  - path: /bff/d\n    parts: {me: {upstream: 'http://other.internal/', token: user_or_client}}\n"
		serviceHead = "  service_client:\n" // line 6
	)
	// with returns minimal with a service_client of the given lines (each
	// indented four spaces, from line 7) and extra at the end.
	with := func(extra string, lines ...string) string {
		sc := serviceHead
		for _, l := range lines {
			sc += "    " + l + "\n"
		}
		return edit(extra, secret, secret+sc)
	}
	tests := []struct {
		name string
		data string
		want []Problem
	}{
		{"valid", with(clientAPI, "client_id: api-caller", "client_secret: s"), nil},
		{"client_secret_post", with(clientAPI, "client_id: api-caller", "client_secret: s", "client_auth: client_secret_post"), nil},
		{"secret file", with(clientAPI, "client_id: api-caller", "client_secret_file: "+secretFile), nil},
		{"exchange route", with(strings.Replace(clientAPI, "token: client", "token: exchange\n    audience: inventory", 1), "client_id: api-caller", "client_secret: s"), nil},
		{"user_or_client route", with(strings.Replace(clientAPI, "token: client", "token: user_or_client", 1), "client_id: api-caller", "client_secret: s"), nil},
		{"composite part", with(partClient, "client_id: api-caller", "client_secret: s"), nil},
		{"client_id missing", with(clientAPI, "client_secret: s"), []Problem{
			{Key: "oidc.service_client.client_id", Msg: "required: the id of the second client"}}},
		{"client_id of the main client", with(clientAPI, "client_id: web", "client_secret: s"), []Problem{
			{Line: 7, Key: "oidc.service_client.client_id", Msg: "is oidc.client_id", Warning: true}}},
		{"no secret", with(clientAPI, "client_id: api-caller"), []Problem{
			{Key: "oidc.service_client.client_secret", Msg: "required: set client_secret (e.g. ${SERVICE_CLIENT_SECRET}) or client_secret_file"}}},
		{"secret and file", with(clientAPI, "client_id: api-caller", "client_secret: s", "client_secret_file: "+secretFile), []Problem{
			{Line: 9, Key: "oidc.service_client.client_secret_file", Msg: "set either client_secret or client_secret_file, not both"}}},
		{"secret file missing", with(clientAPI, "client_id: api-caller", "client_secret_file: "+filepath.Join(dir, "nope")), []Problem{
			{Line: 8, Key: "oidc.service_client.client_secret_file", Msg: "cannot read the file: it does not exist"}}},
		{"secret file empty", with(clientAPI, "client_id: api-caller", "client_secret_file: "+emptyFile), []Problem{
			{Line: 8, Key: "oidc.service_client.client_secret_file", Msg: "the file is empty"}}},
		{"client_auth unknown", with(clientAPI, "client_id: api-caller", "client_secret: s", "client_auth: client_secret_jwt"), []Problem{
			{Line: 9, Key: "oidc.service_client.client_auth", Msg: `"client_secret_jwt" is not a client authentication method`}}},
		{"private_key_jwt without key", with(clientAPI, "client_id: api-caller", "client_auth: private_key_jwt"), []Problem{
			{Key: "oidc.service_client.private_key_file", Msg: "required with client_auth private_key_jwt"}}},
		{"private_key_jwt with key", with(clientAPI, "client_id: api-caller", "client_auth: private_key_jwt", "private_key_file: "+keyFile), nil},
		{"private_key_jwt missing key file", with(clientAPI, "client_id: api-caller", "client_auth: private_key_jwt", "private_key_file: "+filepath.Join(dir, "nope")), []Problem{
			{Line: 9, Key: "oidc.service_client.private_key_file", Msg: "cannot read the file: it does not exist"}}},
		{"private_key_jwt with secret", with(clientAPI, "client_id: api-caller", "client_secret: s", "client_auth: private_key_jwt", "private_key_file: "+keyFile), []Problem{
			{Line: 8, Key: "oidc.service_client.client_secret", Msg: "is not used with client_auth private_key_jwt", Warning: true}}},
		{"private key without private_key_jwt", with(clientAPI, "client_id: api-caller", "client_secret: s", "private_key_file: "+keyFile), []Problem{
			{Line: 9, Key: "oidc.service_client.private_key_file", Msg: "is used only with client_auth private_key_jwt", Warning: true}}},
		{"unused", with(userAPI, "client_id: api-caller", "client_secret: s"), []Problem{
			{Line: 6, Key: "oidc.service_client", Msg: "is not used: no apis[] route or composite part has token client, user_or_client or exchange", Warning: true}}},
		{"unknown key", with(clientAPI, "client_id: api-caller", "client_secret: s", "scopes: [a]"), []Problem{
			{Line: 9, Key: "oidc.service_client.scopes", Msg: "unknown key"}}},
		{"null", edit(clientAPI, secret, secret+"  service_client: null\n"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, sortedByKey(problemsOf(t, tt.data, nil)), sortedByKey(tt.want))
		})
	}
}

func TestServiceClientSecretFile(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("service-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := edit("apis:\n  - {path: /api/, upstream: 'http://api.internal/', token: client}\n",
		"  client_secret: not-a-real-secret\n",
		"  client_secret: not-a-real-secret\n  service_client: {client_id: api-caller, client_secret_file: "+secretFile+"}\n")
	cfg, err := Parse("cloakroom.yaml", []byte(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.OIDC.ServiceClient
	if sc == nil {
		t.Fatal("no service client")
	}
	if got, want := sc.ClientSecret, "service-file-secret"; got != want {
		t.Errorf("service client secret %q, want %q", got, want)
	}
	if got, want := cfg.OIDC.ClientSecret, "not-a-real-secret"; got != want {
		t.Errorf("main client secret %q, want %q", got, want)
	}
	if p := cfg.Validate(); p != nil {
		t.Errorf("Validate after Load: %v", p)
	}
}

// TestServiceClientSecretsNeverPrinted: a service client's problems never
// print its secret, whether it came from the file or the environment.
func TestServiceClientSecretsNeverPrinted(t *testing.T) {
	data := edit("",
		"  client_secret: not-a-real-secret\n",
		"  client_secret: not-a-real-secret\n  service_client:\n    client_id: ${SC_ID}\n    client_secret: ${SC_SECRET}\n    client_auth: ${SC_SECRET}\n")
	env := map[string]string{"SC_ID": "envsecret-id", "SC_SECRET": "envsecret-service-secret"}
	_, err := Parse("cloakroom.yaml", []byte(data), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil {
		t.Fatal("Parse accepted an unknown client_auth")
	}
	if msg := err.Error(); strings.Contains(msg, "envsecret") || !strings.Contains(msg, "oidc.service_client.client_auth") {
		t.Errorf("problems:\n%s\nwant oidc.service_client.client_auth named and no value from the environment", msg)
	}
}
