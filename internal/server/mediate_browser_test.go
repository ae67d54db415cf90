package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// mediatePage is the SPA of the token-mediating test. runMediation keeps
// its keys in local variables only, non-extractable; what it returns is
// what the test inspects (the access token included: in this mode the
// browser holds it by design).
const mediatePage = `<!doctype html><html><head><meta charset="utf-8"><title>mediated</title></head><body>
<script>
const enc = new TextEncoder();
const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const sha256 = async (s) => b64url(await crypto.subtle.digest('SHA-256', enc.encode(s)));

async function publicJWK(key) {
  const j = await crypto.subtle.exportKey('jwk', key.publicKey);
  return { kty: j.kty, crv: j.crv, x: j.x, y: j.y };
}

// RFC 7638: members in lexical order, no spaces.
async function thumbprint(jwk) {
  return sha256(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }));
}

// proof signs an RFC 9449 DPoP proof with key (ES256: WebCrypto's ECDSA
// signature is r||s, as JWS wants it).
async function proof(key, htm, htu, nonce, token) {
  const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: await publicJWK(key) };
  const claims = { jti: b64url(crypto.getRandomValues(new Uint8Array(16))), htm, htu, iat: Math.floor(Date.now() / 1000) };
  if (nonce) claims.nonce = nonce;
  if (token) claims.ath = await sha256(token);
  const input = b64url(enc.encode(JSON.stringify(header))) + '.' + b64url(enc.encode(JSON.stringify(claims)));
  const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.privateKey, enc.encode(input));
  return input + '.' + b64url(sig);
}

window.runMediation = async (api) => {
  const out = {};
  const key = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const other = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  out.extractable = key.privateKey.extractable;
  try { await crypto.subtle.exportKey('jwk', key.privateKey); out.exported = true; } catch (e) { out.exported = false; }
  out.jkt = await thumbprint(await publicJWK(key));

  const target = '/bff/token?api=' + encodeURIComponent('/api/orders/');
  const what = await (await fetch(target, { headers: { 'X-CSRF': '1' } })).json();
  out.what = what;
  const post = async (nonce) => fetch(target, { method: 'POST', headers: { 'X-CSRF': '1', DPoP: await proof(key, what.htm, what.htu, nonce) } });
  let r = await post(what.nonce);
  out.firstStatus = r.status;
  if (r.status === 400 && r.headers.get('DPoP-Nonce')) {
    r = await post(r.headers.get('DPoP-Nonce'));
  }
  out.tokenStatus = r.status;
  out.tokenBody = await r.json();
  const token = out.tokenBody.access_token;

  const call = async (k) => {
    const url = api + '/orders';
    try {
      const res = await fetch(url, { headers: { Authorization: 'DPoP ' + token, DPoP: await proof(k, 'GET', url, '', token) } });
      return res.status;
    } catch (e) {
      return 'failed: ' + e;
    }
  };
  out.apiOwn = await call(key);
  out.apiOther = await call(other);
  out.proxied = (await fetch('/api/plain/x', { headers: { 'X-CSRF': '1' } })).status;
  out.user = (await fetch('/bff/user', { headers: { 'X-CSRF': '1' } })).status;
  out.windowProps = Object.keys(window).filter((k) => /token|refresh/i.test(k));
  return out;
};
</script>
<p>mediated</p>
</body></html>`

// TestMediatedTokenInChromium: the token-mediating mode in a real browser.
// The page's own non-extractable WebCrypto key gets a token bound to it
// from POST /bff/token (after the provider's nonce is relayed), calls the
// API on another origin directly (the default CSP lets it), is refused
// with another key's proof, and the session keeps working. No refresh
// token and no ID token reach the browser: not in a response, storage,
// document.cookie or the page's globals.
func TestMediatedTokenInChromium(t *testing.T) {
	chromium, dir := requireBrowser(t)
	page := t.TempDir()
	if err := os.WriteFile(filepath.Join(page, "index.html"), []byte(mediatePage), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newMediateEnv(t, page)
	csp := newBrowser(t).get(e.g.URL + "/").Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' "+e.api.URL+";") {
		t.Errorf("index.html's CSP does not let the page reach the mediated API %s: %q", e.api.URL, csp)
	}

	out := filepath.Join(t.TempDir(), "mediate.json")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "mediate.mjs"), "--app", e.g.URL, "--api", e.api.URL, "--out", out)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	logs, err := cmd.CombinedOutput()
	raw, _ := os.ReadFile(out)
	if err != nil {
		t.Fatalf("browser run: %v\n%s\n%.6000s", err, logs, raw)
	}
	var ev struct {
		Result struct {
			Extractable, Exported bool
			JKT                   string
			What                  struct{ HTU, HTM, Nonce string }
			FirstStatus           int
			TokenStatus           int
			TokenBody             map[string]any
			APIOwn, APIOther      any
			Proxied, User         int
			WindowProps           []string
		}
		ConsoleErrors  []string
		DocumentCookie string
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	res := ev.Result
	if res.Extractable || res.Exported {
		t.Errorf("the page's private key is extractable (%v) or was exported (%v)", res.Extractable, res.Exported)
	}
	if res.What.HTU != e.p.TokenEndpoint || res.What.HTM != "POST" {
		t.Errorf("GET /bff/token: %+v, want htu %q and POST", res.What, e.p.TokenEndpoint)
	}
	if res.TokenStatus != 200 {
		t.Fatalf("POST /bff/token: %d %v (first attempt %d)", res.TokenStatus, res.TokenBody, res.FirstStatus)
	}
	keys := make([]string, 0, len(res.TokenBody))
	for k := range res.TokenBody {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"access_token", "api", "expires_in", "token_type"}) || res.TokenBody["token_type"] != "DPoP" {
		t.Errorf("POST /bff/token answered %v, want access_token, api, expires_in and token_type DPoP only", keys)
	}
	token, _ := res.TokenBody["access_token"].(string)
	if got := jwtJKT(t, token); got != res.JKT {
		t.Errorf("the token's cnf.jkt is %q, want the page key's thumbprint %q", got, res.JKT)
	}
	if res.APIOwn != 200.0 {
		t.Errorf("the API called directly with the page's own proof: %v, want 200", res.APIOwn)
	}
	if res.APIOther != 401.0 {
		t.Errorf("the API called with another key's proof: %v, want 401", res.APIOther)
	}
	if res.Proxied != 200 || res.User != 200 {
		t.Errorf("after the mediation: proxied call %d, /bff/user %d, want 200 and 200", res.Proxied, res.User)
	}
	if len(res.WindowProps) != 0 {
		t.Errorf("the page's globals name tokens: %v", res.WindowProps)
	}
	if strings.Contains(ev.DocumentCookie, "cloakroom") {
		t.Errorf("document.cookie shows the session cookie: %q", ev.DocumentCookie)
	}
	// (The provider's pages ask for resources a closed network cannot
	// reach, and the refused API call logs its 401: those are not faults.)
	for _, c := range ev.ConsoleErrors {
		if strings.HasPrefix(c, "pageerror:") || strings.Contains(c, "Content Security Policy") {
			t.Errorf("browser error: %s", c)
		}
	}
	// No refresh token and no ID token anywhere the page could see: every
	// JWT in the evidence is an access token bound to the page's key.
	if strings.Contains(string(raw), "refresh_token") || strings.Contains(string(raw), "id_token") {
		t.Error("a refresh_token or id_token member reached the browser")
	}
	jwts := regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`).FindAllString(string(raw), -1)
	if len(jwts) == 0 {
		t.Fatal("the evidence holds no JWT at all; it proves nothing")
	}
	for _, j := range jwts {
		if got := jwtJKT(t, j); got != res.JKT {
			t.Errorf("a JWT bound to %q (not the page's key) reached the browser", got)
		}
	}
}

// jwtJKT returns the cnf.jkt of a JWT, unverified ("" when it has none).
func jwtJKT(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.Cnf.JKT
}
