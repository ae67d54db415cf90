// Package nodeop is TEST SUPPORT ONLY: it runs panva's oidc-provider, a
// certified OpenID Provider with a FAPI 2.0 profile, from
// e2e/oidc-provider/provider.mjs under Node.js, over HTTPS with a throwaway
// CA, so that integration tests can exercise Cloakroom's high-assurance
// client modes against a provider we did not write: private_key_jwt, PAR
// (RFC 9126), DPoP with nonces (RFC 9449), mTLS client authentication and
// certificate-bound tokens (RFC 8705), back-channel logout and the FAPI 2.0
// Security Profile.
//
// It is an ordinary (non-_test) package only so that tests in other packages
// can import it. Production code must never import it.
//
// Typical use:
//
//	ca := nodeop.NewCA(t)
//	key := nodeop.NewRSAKey(t)
//	p := nodeop.Start(t, nodeop.Options{CA: ca, PAR: true, DPoP: true, DPoPNonce: true,
//		Clients: []nodeop.Client{{ClientID: "bff", TokenEndpointAuthMethod: "private_key_jwt",
//			JWKS: nodeop.PublicJWKS(key), RedirectURIs: []string{rp + "/bff/callback"},
//			DPoPBoundAccessTokens: true}}})
//	// configure the gateway with p.Issuer, key.WritePEM(t), and trust ca.File;
//	// a test without a browser finishes the login pages with p.Login.
//
// Node.js must be on PATH and `npm ci --prefix e2e/oidc-provider` must have
// run (`make deps`). Otherwise the test is skipped, or fails when the
// environment variable CI or CLOAKROOM_REQUIRE_INTEGRATION is set.
//
// The provider's behaviour and its deliberate departures from the library's
// defaults (one more HTTPS port for the mTLS endpoint aliases, refresh tokens
// without offline_access, claims in ID tokens, loopback fetches allowed, what
// FAPI2 turns on) are described at the top of provider.mjs.
package nodeop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// scriptDir is the npm package of the provider, relative to the repository
// root.
const scriptDir = "e2e/oidc-provider"

// startTimeout bounds how long the provider may take to print "ready": a
// Node.js start on a loaded 2-core machine has taken over a minute.
const startTimeout = 3 * time.Minute

// stopTimeout is how long the provider gets to exit after SIGTERM.
const stopTimeout = 5 * time.Second

// DefaultUsername is the login name [Provider.Login] uses when
// Options.Username is empty. It becomes the "sub" of issued tokens.
const DefaultUsername = "alice"

// Options configures the provider. The zero value is a plain OpenID Provider
// (code flow, PKCE, client_secret_basic, RP-initiated logout) with no
// clients.
type Options struct {
	// CA signs the provider's server certificate and is the one the
	// provider trusts for tls_client_auth. Nil makes a new one.
	CA *CA

	// Clients are registered statically.
	Clients []Client

	// PAR enables pushed authorization requests; RequirePAR refuses
	// authorization requests that were not pushed.
	PAR, RequirePAR bool

	// DPoP enables DPoP-bound tokens; DPoPNonce makes the provider demand
	// a server nonce in every proof (answering use_dpop_nonce otherwise).
	DPoP, DPoPNonce bool

	// MTLS enables tls_client_auth, self_signed_tls_client_auth and
	// certificate-bound tokens, on a second HTTPS port that asks for a
	// client certificate: discovery lists its URLs as
	// mtls_endpoint_aliases (see Provider.MTLSAliases).
	MTLS bool

	// FAPI2 turns on the library's FAPI 2.0 profile and configures a FAPI
	// 2.0 Security Profile server: PAR required, only private_key_jwt,
	// tls_client_auth and self_signed_tls_client_auth, PS256/ES256/EdDSA
	// only; every client must have DPoPBoundAccessTokens or
	// TLSClientCertificateBoundAccessTokens.
	FAPI2 bool

	BackchannelLogout bool
	Revocation        bool
	Introspection     bool
	ClientCredentials bool

	// Resource, when set, is the resource indicator (RFC 8707) of an API:
	// every access token is then issued for it as a JWT (RFC 9068, PS256,
	// aud = Resource, with cnf for bound tokens) that an upstream can
	// verify with the provider's JWKS, instead of an opaque token for the
	// userinfo endpoint. ResourceScope is the space-separated scope that
	// API accepts (added to the provider's scopes).
	Resource      string
	ResourceScope string

	// Token lifetimes; zero keeps 300 s (access, ID) and 3600 s (refresh).
	// Refresh tokens are rotated on every use.
	AccessTokenTTL, IDTokenTTL, RefreshTokenTTL time.Duration

	// Username is the login name [Provider.Login] enters (any password is
	// accepted); DefaultUsername when empty.
	Username string

	// Accounts sets the email and name claims of some login names; any
	// other name gets <name>@example.test and its own name.
	Accounts map[string]Account
}

// Provider is a running oidc-provider. All fields are read-only after
// [Start] returns.
type Provider struct {
	// Issuer is "https://127.0.0.1:PORT", exactly the discovery issuer.
	Issuer string

	// CA is the CA that signed the provider's certificate.
	CA *CA

	// Username is the login name [Provider.Login] uses.
	Username string

	// Endpoints as advertised by discovery; empty when not enabled.
	AuthorizationEndpoint string
	TokenEndpoint         string
	PAREndpoint           string
	UserinfoEndpoint      string
	RevocationEndpoint    string
	IntrospectionEndpoint string
	EndSessionEndpoint    string
	JWKSURI               string

	// MTLSAliases is discovery's mtls_endpoint_aliases (e.g.
	// "token_endpoint"), on the port that asks for client certificates;
	// nil without Options.MTLS.
	MTLSAliases map[string]string

	// Discovery is the whole discovery document.
	Discovery map[string]any

	cmd    *exec.Cmd
	exited chan struct{}
	stderr *tailBuffer
}

// Start runs the provider and stops it when the test ends. On failure the
// test fails (or is skipped when Node.js or the npm packages are missing,
// see the package documentation); when a test fails, the provider's log is
// written to the test log.
func Start(t testing.TB, opts Options) *Provider {
	t.Helper()
	p, err := start(t, opts)
	if err != nil {
		t.Fatalf("nodeop: %v", err)
	}
	return p
}

// start is Start returning the error, for tests of start-up failures.
func start(t testing.TB, opts Options) (*Provider, error) {
	t.Helper()
	node, script := requireNode(t)
	if opts.CA == nil {
		opts.CA = NewCA(t)
	}
	username := opts.Username
	if username == "" {
		username = DefaultUsername
	}
	server := opts.CA.ServerCert(t)
	cfg := fileConfig{
		Host: "127.0.0.1",
		TLS:  tlsFiles{Cert: server.CertFile, Key: server.KeyFile, CA: opts.CA.File},
		Features: features{
			PAR: opts.PAR, RequirePAR: opts.RequirePAR,
			DPoP: opts.DPoP, DPoPNonce: opts.DPoPNonce,
			MTLS: opts.MTLS, FAPI2: opts.FAPI2,
			BackchannelLogout: opts.BackchannelLogout,
			Revocation:        opts.Revocation,
			Introspection:     opts.Introspection,
			ClientCredentials: opts.ClientCredentials,
		},
		TTL: ttls{
			AccessToken:  seconds(opts.AccessTokenTTL),
			IDToken:      seconds(opts.IDTokenTTL),
			RefreshToken: seconds(opts.RefreshTokenTTL),
		},
		Clients:  opts.Clients,
		Accounts: opts.Accounts,
	}
	if cfg.Clients == nil {
		cfg.Clients = []Client{}
	}
	if opts.Resource != "" {
		cfg.Resource = &resource{URI: opts.Resource, Scope: opts.ResourceScope}
	}
	cfgFile := writeJSON(t, "provider.json", cfg)

	p := &Provider{CA: opts.CA, Username: username, exited: make(chan struct{}), stderr: &tailBuffer{max: 64 << 10}}
	cmd := exec.Command(node, script, cfgFile)
	cmd.Dir = filepath.Dir(script)
	// The provider fetches jwks_uri documents and posts logout tokens to
	// servers that the test CA certified.
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+opts.CA.File)
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", node, err)
	}
	p.cmd = cmd
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if issuer, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- issuer
				break
			}
		}
		// Keep draining so that the provider never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("nodeop: provider log:\n%s", p.stderr.String())
		}
	})

	select {
	case p.Issuer = <-ready:
	case <-p.exited:
		return nil, fmt.Errorf("provider exited before it was ready:\n%s", p.stderr.String())
	case <-time.After(startTimeout):
		p.stop()
		return nil, fmt.Errorf("provider not ready after %v:\n%s", startTimeout, p.stderr.String())
	}
	if err := p.discover(t); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Provider) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// discover reads the discovery document into p's endpoint fields.
func (p *Provider) discover(t testing.TB) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		return err
	}
	resp, err := p.CA.HTTPClient(t).Do(req)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("discovery: %s", resp.Status)
	}
	var doc struct {
		Issuer                string            `json:"issuer"`
		AuthorizationEndpoint string            `json:"authorization_endpoint"`
		TokenEndpoint         string            `json:"token_endpoint"`
		PAREndpoint           string            `json:"pushed_authorization_request_endpoint"`
		UserinfoEndpoint      string            `json:"userinfo_endpoint"`
		RevocationEndpoint    string            `json:"revocation_endpoint"`
		IntrospectionEndpoint string            `json:"introspection_endpoint"`
		EndSessionEndpoint    string            `json:"end_session_endpoint"`
		JWKSURI               string            `json:"jwks_uri"`
		MTLSAliases           map[string]string `json:"mtls_endpoint_aliases"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if err := json.Unmarshal(body, &p.Discovery); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if doc.Issuer != p.Issuer {
		return fmt.Errorf("discovery: issuer %q, want %q", doc.Issuer, p.Issuer)
	}
	p.AuthorizationEndpoint = doc.AuthorizationEndpoint
	p.TokenEndpoint = doc.TokenEndpoint
	p.PAREndpoint = doc.PAREndpoint
	p.UserinfoEndpoint = doc.UserinfoEndpoint
	p.RevocationEndpoint = doc.RevocationEndpoint
	p.IntrospectionEndpoint = doc.IntrospectionEndpoint
	p.EndSessionEndpoint = doc.EndSessionEndpoint
	p.JWKSURI = doc.JWKSURI
	p.MTLSAliases = doc.MTLSAliases
	return nil
}

// Log returns the end of what the provider wrote to stderr (at most 64 KiB).
func (p *Provider) Log() string { return p.stderr.String() }

// requireNode finds node and the provider script with its npm packages, or
// skips (fails under CI or CLOAKROOM_REQUIRE_INTEGRATION) the test.
func requireNode(t testing.TB) (node, script string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		var dir string
		dir, err = repoDir(scriptDir)
		if err == nil {
			script = filepath.Join(dir, "provider.mjs")
			if _, serr := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); serr != nil {
				err = fmt.Errorf("the npm packages of %s are not installed", scriptDir)
			}
		}
	}
	if err == nil {
		return node, script
	}
	msg := fmt.Sprintf("nodeop: %v (run `make deps`, or `npm ci --prefix %s`)", err, scriptDir)
	if os.Getenv("CI") != "" || os.Getenv("CLOAKROOM_REQUIRE_INTEGRATION") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return "", ""
}

// repoDir finds rel (a directory) in the working directory or above it.
func repoDir(rel string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, rel)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no %s above %s", rel, wd)
		}
	}
}

func seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return max(1, int(d/time.Second))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if over := len(b.b) - b.max; over > 0 {
		b.b = append(b.b[:0], b.b[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}
