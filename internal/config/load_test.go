package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// minimal is the smallest valid file; its line numbers are used below.
const minimal = `public_url: https://app.example.com
oidc:
  issuer: https://idp.example.com
  client_id: web
  client_secret: not-a-real-secret
session:
  store: memory
  keys: [0123456789abcdef0123456789abcdef]
`

// edit returns minimal with each old/new pair replaced, then extra.
func edit(extra string, oldnew ...string) string {
	return strings.NewReplacer(oldnew...).Replace(minimal) + extra
}

var ignoreMeta = cmpopts.IgnoreUnexported(Config{})

// problemsOf parses data and returns its problems, warnings included.
func problemsOf(t *testing.T, data string, lookup func(string) (string, bool)) []Problem {
	t.Helper()
	cfg, err := Parse("cloakroom.yaml", []byte(data), lookup)
	if err == nil {
		if w := cfg.Warnings(); w != nil {
			return w.List
		}
		return nil
	}
	var probs *Problems
	if !errors.As(err, &probs) {
		t.Fatalf("Parse returned %T %v, want *Problems", err, err)
	}
	if cfg != nil {
		t.Errorf("Parse returned a config with its error")
	}
	return probs.List
}

// checkProblems compares problems; a wanted Msg need only be part of the
// message.
func checkProblems(t *testing.T, got, want []Problem) {
	t.Helper()
	got = append([]Problem(nil), got...)
	for i := range got {
		if i < len(want) && want[i].Msg != "" && strings.Contains(got[i].Msg, want[i].Msg) {
			got[i].Msg = want[i].Msg
		}
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestParseMinimal(t *testing.T) {
	cfg, err := Parse("cloakroom.yaml", []byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.PublicURL = "https://app.example.com"
	want.OIDC.Issuer = "https://idp.example.com"
	want.OIDC.ClientID = "web"
	want.OIDC.ClientSecret = "not-a-real-secret"
	want.Session.Store = "memory"
	want.Session.Keys = []string{"0123456789abcdef0123456789abcdef"}
	if diff := cmp.Diff(want, cfg, ignoreMeta); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if w := cfg.Warnings(); w != nil {
		t.Errorf("got warnings %v, want none", w)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("cloakroom.yaml", []byte(minimal+"apis:\n  - {path: /api/, upstream: http://api.internal/}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{
		"listen":                   cfg.Listen,
		"admin_listen":             cfg.AdminListen,
		"session.cookie_name":      cfg.Session.CookieName,
		"session.same_site":        cfg.Session.SameSite,
		"session.idle_timeout":     cfg.Session.IdleTimeout,
		"session.absolute_timeout": cfg.Session.AbsoluteTimeout,
		"session.refresh_before":   cfg.Session.RefreshBefore,
		"csrf":                     cfg.CSRF,
		"oidc.scopes":              cfg.OIDC.Scopes,
		"oidc.callback_path":       cfg.OIDC.CallbackPath,
		"oidc.post_logout_path":    cfg.OIDC.PostLogoutPath,
		"oidc.client_auth":         cfg.OIDC.ClientAuth,
		"apis[0].token":            cfg.APIs[0].Token,
		"apis[0].timeout":          cfg.APIs[0].Timeout,
	}
	want := map[string]any{
		"listen":                   ":8080",
		"admin_listen":             "",
		"session.cookie_name":      "__Host-Http-cloakroom",
		"session.same_site":        "strict",
		"session.idle_timeout":     30 * time.Minute,
		"session.absolute_timeout": 12 * time.Hour,
		"session.refresh_before":   60 * time.Second,
		"csrf":                     CSRF{Header: "X-CSRF", Value: "1"},
		"oidc.scopes":              []string{"openid", "profile", "email", "offline_access"},
		"oidc.callback_path":       "/bff/callback",
		"oidc.post_logout_path":    "/",
		"oidc.client_auth":         "client_secret_basic",
		"apis[0].token":            "user",
		"apis[0].timeout":          30 * time.Second,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if got, want := Default().Session.Store, "file:./cloakroom-sessions.db"; got != want {
		t.Errorf("default store %q, want %q", got, want)
	}

	// An explicit value wins over its default, zero included; null keeps it.
	cfg, err = Parse("cloakroom.yaml", []byte(minimal+"  refresh_before: 0\n  same_site: null\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Session.RefreshBefore != 0 || cfg.Session.SameSite != "strict" {
		t.Errorf("refresh_before %v, same_site %q; want 0, strict", cfg.Session.RefreshBefore, cfg.Session.SameSite)
	}
}

func TestEnv(t *testing.T) {
	lookup := env(map[string]string{
		"SECRET":    "s3: cret\nlisten: \":9999\"",
		"KEY":       "abcdefghijklmnopqrstuvwxyz012345], listen: x",
		"EMPTY":     "",
		"IDLE":      "45m",
		"REQ":       "true",
		"CSRF_HDR":  "X-Requested-By",
		"ISSUER":    "https://idp.example.com",
		"AUDIENCE":  "billing}",
		"COMMENTED": "never read",
	})
	data := `# ${NOT_SET_BUT_IN_A_COMMENT}
public_url: ${PUBLIC_URL:-https://app.example.com}
oidc:
  issuer: "${ISSUER}"
  client_id: pa$$word$${ID}
  client_secret: ${SECRET}
session:
  store: memory
  keys: [${KEY}, "${EMPTY:-abcdefghijklmnopqrstuvwxyz-default}"]
  idle_timeout: ${IDLE}
  absolute_timeout: ${ABS:-12h}   # ${NOT_SET_EITHER}
csrf: {header: ${CSRF_HDR}, value: ${CSRF_VALUE:-yes}}
apis:
  - {path: /api/, upstream: 'http://${HOST:-api.internal}/', token: exchange, audience: ${AUDIENCE}}
composites:
  - path: /bff/x
    parts:
      a: {api: /api/, required: ${REQ}}
    profiles:
      web: {allow: [a]}
`
	cfg, err := Parse("cloakroom.yaml", []byte(data), lookup)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"public_url", cfg.PublicURL, "https://app.example.com"},
		{"oidc.issuer", cfg.OIDC.Issuer, "https://idp.example.com"},
		{"oidc.client_id", cfg.OIDC.ClientID, "pa$word${ID}"},
		{"oidc.client_secret", cfg.OIDC.ClientSecret, "s3: cret\nlisten: \":9999\""},
		{"listen", cfg.Listen, ":8080"},
		{"session.keys", cfg.Session.Keys, []string{"abcdefghijklmnopqrstuvwxyz012345], listen: x", "abcdefghijklmnopqrstuvwxyz-default"}},
		{"session.idle_timeout", cfg.Session.IdleTimeout, 45 * time.Minute},
		{"session.absolute_timeout", cfg.Session.AbsoluteTimeout, 12 * time.Hour},
		{"csrf", cfg.CSRF, CSRF{Header: "X-Requested-By", Value: "yes"}},
		{"apis[0].upstream", cfg.APIs[0].Upstream, "http://api.internal/"},
		{"apis[0].audience", cfg.APIs[0].Audience, "billing}"},
		{"composites[0].parts.a.required", cfg.Composites[0].Parts["a"].Required, true},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.key, diff)
		}
	}

	// A block scalar is expanded too.
	cfg, err = Parse("cloakroom.yaml", []byte(edit("", "  client_id: web\n", "  client_id: |-\n    ${ID:-web}-$${ID}\n")), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.OIDC.ClientID, "web-${ID}"; got != want {
		t.Errorf("client_id %q, want %q", got, want)
	}

	// Keys are never expanded, and a missing variable is named with the
	// line of its value.
	got := problemsOf(t, data+"${KEY}: 1\n", lookup)
	checkProblems(t, got, []Problem{
		{Line: 21, Key: `["${KEY}"]`, Msg: "unknown key; references are expanded in values only, never in keys"},
	})
	got = problemsOf(t, edit("listen: ${LISTEN}\n  # ${IN_COMMENT}\n"), lookup)
	checkProblems(t, got, []Problem{
		{Line: 9, Key: "listen", Msg: "${LISTEN} is not set: set it, or give a default with ${LISTEN:-value}"},
	})
}

func TestDecodeProblems(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []Problem
	}{
		{
			name: "unknown keys at every level",
			data: edit("lisen: :8080\napis:\n  - path: /api/\n    upstream: http://api.internal/\n    tokn: user\n    require: {scope: [a]}\nwhatever: 1\n",
				"  client_id: web\n", "  client_id: web\n  clientid: web\n"),
			want: []Problem{
				{Line: 5, Key: "oidc.clientid", Msg: `unknown key; did you mean "client_id"?`},
				{Line: 10, Key: "lisen", Msg: `unknown key; did you mean "listen"?`},
				{Line: 14, Key: "apis[0].tokn", Msg: `unknown key; did you mean "token"?`},
				{Line: 15, Key: "apis[0].require.scope", Msg: `unknown key; did you mean "scopes"?`},
				{Line: 16, Key: "whatever", Msg: "unknown key; the keys at the top level are: listen, public_url, admin_listen, admin_token, admin_token_file, log_level, trusted_proxies, shutdown_delay, tls, oidc, session, csrf, cors, frontend, apis, composites, rate_limit"},
			},
		},
		{
			name: "wrong shapes",
			data: edit("apis: {path: /api/}\ncors: [https://a.example.com]\nlisten: [a, b]\ntrusted_proxies: 10.0.0.0/8\n"),
			want: []Problem{
				{Line: 9, Key: "apis", Msg: "expected a list, not a mapping"},
				{Line: 10, Key: "cors", Msg: "expected a mapping of keys to values, not a list"},
				{Line: 11, Key: "listen", Msg: "expected a single value, not a list"},
				{Line: 12, Key: "trusted_proxies", Msg: "expected a list, not a single value"},
			},
		},
		{
			name: "bad durations and booleans",
			data: edit("  idle_timeout: 30\n  absolute_timeout: soon\napis: [{path: /a/, upstream: http://a/, timeout: 1.5}]\ncomposites:\n  - path: /bff/x\n    parts: {p: {api: /a/, required: yes}}\n"),
			want: []Problem{
				{Line: 9, Key: "session.idle_timeout", Msg: `"30" is not a duration: write a number and a unit, e.g. 30s, 5m or 12h`},
				{Line: 10, Key: "session.absolute_timeout", Msg: `"soon" is not a duration`},
				{Line: 11, Key: "apis[0].timeout", Msg: `"1.5" is not a duration`},
				{Line: 14, Key: "composites[0].parts.p.required", Msg: `"yes" is not a boolean: write true or false`},
			},
		},
		{
			name: "syntax error",
			data: edit("apis: [{path: /a/\nlisten: x\n"),
			want: []Problem{{Line: 10, Msg: "invalid YAML"}},
		},
		{
			name: "two documents",
			data: minimal + "---\nlisten: x\n",
			want: []Problem{{Line: 10, Msg: "more than one YAML document"}},
		},
		{
			name: "not a mapping",
			data: "- a\n- b\n",
			want: []Problem{{Line: 1, Msg: "expected a mapping of keys to values, not a list"}},
		},
		{
			name: "unknown alias",
			data: edit("listen: *port\n"),
			want: []Problem{{Line: 9, Key: "listen", Msg: "alias *port names no anchor"}},
		},
		{
			name: "empty file",
			data: "",
			want: []Problem{
				{Key: "oidc.client_id", Msg: "required"},
				{Key: "oidc.client_secret", Msg: "required"},
				{Key: "oidc.issuer", Msg: "required"},
				{Key: "public_url", Msg: "required"},
				{Key: "session.keys", Msg: "at least one key is required"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, sortedByKey(problemsOf(t, tt.data, nil)), sortedByKey(tt.want))
		})
	}
}

// sortedByKey orders problems by line, then key: the order of one line is
// not part of the contract.
func sortedByKey(l []Problem) []Problem {
	l = append([]Problem(nil), l...)
	for i := range l {
		for j := i + 1; j < len(l); j++ {
			if l[j].Line < l[i].Line || l[j].Line == l[i].Line && l[j].Key < l[i].Key {
				l[i], l[j] = l[j], l[i]
			}
		}
	}
	return l
}

func TestAnchorsAndMerge(t *testing.T) {
	data := minimal + `x_defaults: &api {upstream: http://api.internal/, token: client, timeout: 5s}
apis:
  - <<: *api
    path: /a/
  - <<: *api
    path: /b/
    token: user
`
	got := problemsOf(t, data, nil)
	checkProblems(t, got, []Problem{{Line: 9, Key: "x_defaults", Msg: "unknown key"}})

	data = minimal + `apis:
  - &a {path: /a/, upstream: http://api.internal/, token: client, timeout: 5s}
  - <<: *a
    path: /b/
    token: user
`
	cfg, err := Parse("cloakroom.yaml", []byte(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []API{
		{Path: "/a/", Upstream: "http://api.internal/", Token: "client", Timeout: 5 * time.Second, MaxBodyBytes: 10 << 20},
		{Path: "/b/", Upstream: "http://api.internal/", Token: "user", Timeout: 5 * time.Second, MaxBodyBytes: 10 << 20},
	}
	if diff := cmp.Diff(want, cfg.APIs); diff != "" {
		t.Errorf("apis (-want +got):\n%s", diff)
	}
}

// TestDecoderAgrees decodes one file with every kind of field both here
// and with goccy/go-yaml's own strict decoder.
func TestDecoderAgrees(t *testing.T) {
	data := minimal + `listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:9090
trusted_proxies: [10.0.0.0/8, 192.0.2.7]
cors: {allowed_origins: [https://admin.example.com]}
frontend: {dev_server: http://localhost:5173}
apis:
  - path: /api/orders/
    upstream: http://orders.internal:8080/
    token: user
    require: {scopes: [orders.read], claims: {role: [admin, staff]}}
    timeout: 1m30s
    methods: [GET, POST]
    max_body_bytes: 1024
  - path: /api/catalog/
    upstream: https://catalog.example.com/
    token: client
    scopes: [catalog.read]
    resource: https://catalog.example.com/
    audience: catalog
    timeout: 0s
    max_body_bytes: 0
composites:
  - path: /bff/dashboard
    parts:
      orders: {api: /api/orders/, path: recent, required: true, timeout: 2s}
      catalog: {api: /api/catalog/, path: top}
    profiles:
      mobile: {allow: [orders.id], deny: [catalog.secret]}
rate_limit: {api_per_second: 7, login_per_minute: 0}
`
	got, err := Parse("cloakroom.yaml", []byte(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	if err := yaml.UnmarshalWithOptions([]byte(data), want, yaml.DisallowUnknownField()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, ignoreMeta); diff != "" {
		t.Errorf("this decoder (+) and goccy/go-yaml (-) disagree:\n%s", diff)
	}
}

func TestExample(t *testing.T) {
	example, err := filepath.Abs("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if err := os.Mkdir("dist", 0o755); err != nil {
		t.Fatal(err)
	}
	lookup := env(map[string]string{
		"SESSION_KEY":        "base64:3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"OIDC_CLIENT_SECRET": "example-secret",
	})
	cfg, err := Load(example, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); w != nil {
		t.Errorf("warnings:\n%v", w)
	}
	if got, want := len(cfg.Session.KeyBytes()[0]), 32; got != want {
		t.Errorf("key of %d bytes, want %d", got, want)
	}
	if got, want := cfg.OIDC.ClientSecret, "example-secret"; got != want {
		t.Errorf("client secret %q, want %q", got, want)
	}
	if got, want := len(cfg.APIs), 4; got != want {
		t.Errorf("%d apis, want %d", got, want)
	}

	// Without the variables it names both, each with its line.
	_, err = Load(example, nil)
	var probs *Problems
	if !errors.As(err, &probs) {
		t.Fatalf("Load without variables: %v", err)
	}
	checkProblems(t, probs.List, []Problem{
		{Line: 17, Key: "oidc.client_secret", Msg: "${OIDC_CLIENT_SECRET} is not set"},
		{Line: 32, Key: "session.keys[0]", Msg: "${SESSION_KEY} is not set"},
	})
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	var probs *Problems
	if !errors.As(err, &probs) || !strings.HasSuffix(err.Error(), "missing.yaml: cannot read the file: it does not exist") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestClientSecretFile(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withFile := func(path string) string {
		return edit("", "  client_secret: not-a-real-secret\n", "  client_secret_file: "+path+"\n")
	}

	cfg, err := Parse("cloakroom.yaml", []byte(withFile(secret)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.OIDC.ClientSecret, "file-secret"; got != want {
		t.Errorf("client secret %q, want %q", got, want)
	}
	if p := cfg.Validate(); p != nil {
		t.Errorf("Validate after Load: %v", p)
	}

	checkProblems(t, problemsOf(t, withFile(filepath.Join(dir, "nope")), nil), []Problem{
		{Line: 5, Key: "oidc.client_secret_file", Msg: "cannot read the file: it does not exist"},
	})
	checkProblems(t, problemsOf(t, withFile(empty), nil), []Problem{
		{Line: 5, Key: "oidc.client_secret_file", Msg: "the file is empty"},
	})
	checkProblems(t, problemsOf(t, edit("", "  client_id: web\n", "  client_id: web\n  client_secret_file: "+secret+"\n"), nil), []Problem{
		{Line: 5, Key: "oidc.client_secret_file", Msg: "set either client_secret or client_secret_file, not both"},
	})
}

func TestGolden(t *testing.T) {
	t.Chdir("testdata")
	_, err := Load("bad.yaml", env(map[string]string{"SESSION_KEY": "short-env-secret"}))
	if err == nil {
		t.Fatal("bad.yaml loaded")
	}
	got := err.Error() + "\n"
	const golden = "check-bad.golden"
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
	for _, secret := range []string{"hunter2", "short-env-secret", "too-short-to-seal", "not*base64"} {
		if strings.Contains(got, secret) {
			t.Errorf("problems print the secret %q", secret)
		}
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	lookup := env(map[string]string{
		"PUBLIC":   "http://envsecret-public.example.com/path",
		"ISSUER":   "ftp://envsecret-issuer",
		"CLIENT":   "envsecret-client-secret",
		"KEY":      "envsecret-key",
		"STORE":    "redis:/user:envsecret-store@db",
		"UPSTREAM": "envsecret-upstream",
		"TOKEN":    "envsecret-token",
		"DUR":      "envsecret-duration",
		"ORIGIN":   "https://envsecret-origin.example.com/x",
		"PROXY":    "envsecret-proxy",
		"ADMIN":    "envsecret-admin",
		"BOOL":     "envsecret-bool",
		"DIR":      "./envsecret-dir",
	})
	data := `public_url: ${PUBLIC}
admin_listen: ${ADMIN}
trusted_proxies: [${PROXY}]
oidc:
  issuer: ${ISSUER}
  client_id: web
  client_secret: ${CLIENT}
  client_secret_file: /run/secrets/literal-secret-file
  client_auth: ${TOKEN}
session:
  store: ${STORE}
  keys: [${KEY}, literal-short-key, "base64:literal*key"]
  idle_timeout: ${DUR}
cors: {allowed_origins: [${ORIGIN}]}
frontend: {dir: "${DIR}"}
apis:
  - {path: /api/, upstream: "${UPSTREAM}", token: "${TOKEN}"}
composites:
  - path: /bff/x
    parts: {a: {api: "${TOKEN}", required: "${BOOL}"}}
`
	_, err := Parse("cloakroom.yaml", []byte(data), lookup)
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	msg := err.Error()
	for _, secret := range []string{"envsecret", "literal-short-key", "literal*key", "literal-secret-file"} {
		if strings.Contains(msg, secret) {
			t.Errorf("problems print %q:\n%s", secret, msg)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n < 15 {
		t.Errorf("only %d problems:\n%s", n, msg)
	}
}

func TestProblemsError(t *testing.T) {
	p := &Problems{File: "c.yaml", List: []Problem{
		{Line: 7, Key: "b", Msg: "second"},
		{Line: 0, Key: "a", Msg: "absent"},
		{Line: 3, Key: "c", Msg: "first", Warning: true},
		{Line: 9, Msg: "no key"},
	}}
	want := "c.yaml: a: absent\nc.yaml:3: warning: c: first\nc.yaml:7: b: second\nc.yaml:9: no key"
	if got := p.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestKeyBytes(t *testing.T) {
	s := Session{Keys: []string{
		"0123456789abcdef0123456789abcdef",
		"base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
		"base64:-_-_",
		"base64:not*base64",
	}}
	seq := make([]byte, 32)
	for i := range seq {
		seq[i] = byte(i)
	}
	want := [][]byte{[]byte("0123456789abcdef0123456789abcdef"), seq, seq, {0xfb, 0xff, 0xbf}, nil}
	if diff := cmp.Diff(want, s.KeyBytes()); diff != "" {
		t.Errorf("KeyBytes (-want +got):\n%s", diff)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("keys: [${A}]\ncsrf: {value: ${B:-x}}\n"))
	f.Add([]byte("x: &a {path: /a/}\napis:\n  - <<: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("f.yaml", data, fuzzEnv)
		var probs *Problems
		if err != nil && !errors.As(err, &probs) {
			t.Errorf("Parse returned %T, want *Problems", err)
		}
	})
}

// TestHostileAliases checks that alias and merge-key loops and bombs end
// quickly with a problem.
func TestHostileAliases(t *testing.T) {
	var bomb strings.Builder
	bomb.WriteString("x0: &a0 {client_id: web}\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&bomb, "x%d: &a%d {<<: [*a%d, *a%d]}\n", i, i, i-1, i-1)
	}
	bomb.WriteString("oidc: {<<: *a39}\n")
	tests := []struct {
		name string
		data string
		want Problem // Line -1: any line
	}{
		{"merge loop", "oidc: &a {<<: [*a, *a]}\n", Problem{Line: 1, Key: "oidc", Msg: "a merge key leads back to its own mapping"}},
		{"alias loop", "apis: &a [*a, *a]\n", Problem{Line: 1, Key: "apis[0]", Msg: "expected a mapping of keys to values, not a list"}},
		{"merge bomb", bomb.String(), Problem{Line: -1, Key: "oidc", Msg: "aliases and merge keys expand too far"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got := problemsOf(t, tt.data, nil)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			for _, p := range got {
				if (p.Line == tt.want.Line || tt.want.Line < 0) && p.Key == tt.want.Key && strings.Contains(p.Msg, tt.want.Msg) {
					return
				}
			}
			t.Errorf("problems %v lack %v", got, tt.want)
		})
	}
}
