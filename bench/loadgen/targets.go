package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// instance is one running target: its processes, the base URL the load
// goes to, and the Cookie header a browser would send it.
type instance struct {
	name    string
	skipped string // why the target does not run, if it does not
	base    string // http://localhost:PORT: every target is addressed as the browser addresses Cloakroom
	cookie  string // sessionCookie=value
	store   string // Cloakroom's session.store
	gateway *proc  // the Cloakroom or bare proxy process; nil for direct
	// pids are the target's processes by role: "target" (the measured
	// one) and "redis-server".
	pids  map[string]int
	procs []*proc // stopped in reverse order
}

func (in *instance) stop() {
	for i := len(in.procs) - 1; i >= 0; i-- {
		in.procs[i].stop()
	}
}

// alive reports an error when one of the target's processes has exited.
func (in *instance) alive() error {
	for _, p := range in.procs {
		if err := p.alive(); err != nil {
			return err
		}
	}
	return nil
}

// startRound starts every target that one of the scenarios runs on, for
// one round: the Cloakroom targets first, so that bare can be given the
// access token Cloakroom forwards (see bareBearer). The caller stops them.
func (e *env) startRound(ctx context.Context, round int) (map[string]*instance, error) {
	o := e.opts
	order := make([]string, 0, len(o.Targets))
	for _, t := range o.Targets {
		if strings.HasPrefix(t, "cloakroom-") {
			order = append(order, t)
		}
	}
	for _, t := range o.Targets {
		if !strings.HasPrefix(t, "cloakroom-") {
			order = append(order, t)
		}
	}
	insts := map[string]*instance{}
	for _, t := range order {
		if !o.needs(t) {
			continue
		}
		if t == targetBare && e.bearer == "" {
			tok, from, err := e.bareBearer(ctx, insts)
			if err != nil {
				stopAll(insts)
				return nil, err
			}
			e.bearer, e.bearerFrom = tok, from
			fmt.Fprintf(e.log, "loadgen: bare adds a %d-byte bearer: %s\n", len(tok), from)
		}
		in, err := e.startTarget(ctx, t, round)
		if err != nil {
			stopAll(insts)
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		insts[t] = in
		if n := o.frontends(t); n > 0 {
			in, err := e.startCloakroomTarget(ctx, t, frontendsKey(t), "memory", n)
			if err != nil {
				stopAll(insts)
				return nil, fmt.Errorf("%s with %d frontends: %w", t, n, err)
			}
			insts[frontendsKey(t)] = in
		}
	}
	return insts, nil
}

// frontendsKey is the key, in e.ports and a round's instances, of the
// second process of Cloakroom target t, the one with frontends: (see
// frontendsYAML) that the scenarios with Frontends measure as t.
func frontendsKey(t string) string { return t + "+frontends" }

// instanceKey is the key of the instance that scenario s measures as
// target t.
func instanceKey(t string, s scenario) string {
	if s.Frontends > 0 && strings.HasPrefix(t, "cloakroom-") {
		return frontendsKey(t)
	}
	return t
}

func stopAll(insts map[string]*instance) {
	for _, in := range insts {
		in.stop()
	}
}

// startTarget starts target name's processes and, for Cloakroom, signs in.
func (e *env) startTarget(ctx context.Context, name string, round int) (*instance, error) {
	o := e.opts
	in := &instance{name: name, pids: map[string]int{}}
	switch name {
	case targetDirect:
		in.base = "http://localhost" + e.upURL[strings.LastIndexByte(e.upURL, ':'):]
		in.pids["target"] = e.upstream.pid()
		in.cookie = sessionCookie + "=" + dummyTicket()
		return in, nil
	case targetBare:
		tokenFile := filepath.Join(e.tmp, "bare-token")
		if err := os.WriteFile(tokenFile, []byte(e.bearer), 0o600); err != nil {
			return nil, err
		}
		p, addr, err := startProc("bareproxy", e.logDir, e.tmp, e.self, true,
			"bareproxy", "--addr", "127.0.0.1:0", "--upstream", e.upURL+"/", "--token-file", tokenFile,
			fmt.Sprintf("--gc-floor=%v", e.opts.BareGCFloor))
		if err != nil {
			return nil, err
		}
		in.procs = append(in.procs, p)
		in.gateway = p
		in.base = "http://localhost" + addr[strings.LastIndexByte(addr, ':'):]
		in.pids["target"] = p.pid()
		in.cookie = sessionCookie + "=" + dummyTicket()
		return in, nil
	}
	// A store of its own every round: the login scenario leaves sessions.
	store := "memory"
	switch name {
	case targetFile:
		store = "file:" + filepath.Join(e.tmp, fmt.Sprintf("s-%d.db", round))
	case targetRedis:
		bin, err := exec.LookPath(o.RedisServer)
		if err != nil {
			in.skipped = fmt.Sprintf("redis-server not found (%v)", err)
			return in, nil
		}
		rp, raddr, err := startRedis(ctx, bin, e.logDir, e.tmp)
		if err != nil {
			return nil, err
		}
		in.procs = append(in.procs, rp)
		in.pids["redis-server"] = rp.pid()
		store = "redis://" + raddr
	}
	if err := e.runCloakroom(ctx, in, name, store, 0); err != nil {
		in.stop()
		return nil, err
	}
	return in, nil
}

// startCloakroomTarget starts a Cloakroom process of target name with n
// frontends, on the port of key, and signs in.
func (e *env) startCloakroomTarget(ctx context.Context, name, key, store string, n int) (*instance, error) {
	in := &instance{name: name, pids: map[string]int{}}
	if err := e.runCloakroom(ctx, in, key, store, n); err != nil {
		in.stop()
		return nil, err
	}
	return in, nil
}

// runCloakroom starts Cloakroom for in, on the port of key, with store and
// n frontends (0: a config without frontends:), and signs in.
func (e *env) runCloakroom(ctx context.Context, in *instance, key, store string, n int) error {
	p, err := e.startCloakroom(ctx, key, store, n)
	if err != nil {
		return err
	}
	in.procs = append(in.procs, p)
	in.gateway = p
	in.store = store
	in.pids["target"] = p.pid()
	in.base = fmt.Sprintf("http://localhost:%d", e.ports[key])
	cookie, err := login(ctx, in.base)
	if err != nil {
		return fmt.Errorf("login: %w; gateway log:\n%s", err, p.tail())
	}
	in.cookie = cookie.Name + "=" + cookie.Value
	return nil
}

// bareBearer is the bearer bare adds. It should be as long as the access
// token Cloakroom forwards: the upstream requests of both proxies are then
// the same size, and so are the bytes each proxy writes and the upstream
// reads. So it is that very token, taken from what the upstream saw
// of a request through a Cloakroom target that is already running. When
// no Cloakroom target runs there is nothing to match, and it is a JWT the
// provider signs with an access token's claims for the same user, a few
// bytes longer (its header's "typ" is a logout token's).
func (e *env) bareBearer(ctx context.Context, insts map[string]*instance) (string, string, error) {
	for _, t := range []string{targetMemory, targetFile, targetRedis} {
		if in := insts[t]; in != nil && in.skipped == "" {
			tok, err := e.forwardedToken(ctx, in)
			return tok, "the access token " + t + " forwards", err
		}
	}
	// The claims of the provider's access tokens for the user, with ids
	// as long as its own (16 random bytes).
	id := func() string { return dummyTicket()[:22] }
	now := time.Now()
	tok, err := e.idp.SignClaims(map[string]any{
		"iss": e.issuer, "sub": "alice-1", "aud": "bench", "client_id": "bench",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "auth_time": now.Unix(),
		"jti": id(), "sid": id(), "scope": "openid profile email offline_access", "groups": []string{"users"},
	})
	if err != nil {
		return "", "", err
	}
	return tok, "a JWT signed by the provider with an access token's claims (no Cloakroom target ran to take the real one from)", nil
}

// forwardedToken sends one small request through the Cloakroom target in
// and returns the access token the upstream saw.
func (e *env) forwardedToken(ctx context.Context, in *instance) (string, error) {
	client := newClient(1)
	defer client.CloseIdleConnections()
	if err := e.armUpstream(ctx, client, 1); err != nil {
		return "", err
	}
	req, err := in.newRequest(ctx, scenarioByName("small"))
	if err != nil {
		return "", err
	}
	resp, _, err := do(client, req)
	if err != nil {
		return "", fmt.Errorf("bare's bearer: %w", err)
	}
	st, err := e.upstreamStats(ctx, client)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || len(st.Probes) != 1 {
		return "", fmt.Errorf("bare's bearer: %s answered %d and the upstream recorded %d requests", in.name, resp.StatusCode, len(st.Probes))
	}
	tok, ok := strings.CutPrefix(st.Probes[0].Authorization, "Bearer ")
	if !ok {
		return "", fmt.Errorf("bare's bearer: %s forwarded no bearer", in.name)
	}
	if _, err := e.idp.VerifyAccessToken(tok); err != nil {
		return "", fmt.Errorf("bare's bearer: %s forwarded a token the provider does not know: %w", in.name, err)
	}
	return tok, nil
}

// startCloakroom writes a config for store and runs `cloakroom serve` on
// the port of name, waiting (at most 15s) until /bff/login redirects to
// the provider. Every Cloakroom target has the same config but for the
// store, composites included, though only cloakroom-memory is measured
// with them. With frontends > 0 the config has that many frontends (see
// frontendsYAML) in place of the top-level public_url.
func (e *env) startCloakroom(ctx context.Context, name, store string, frontends int) (*proc, error) {
	port := e.ports[name]
	public := fmt.Sprintf("http://localhost:%d", port)
	cfg := e.cloakroomConfig(name, port, store, frontends)
	path := filepath.Join(e.tmp, strings.ReplaceAll(name, "+", "-")+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p, _, err := startProc(name, e.logDir, e.tmp, e.opts.Cloakroom, false, "serve", "--config", path)
	if err != nil {
		return nil, err
	}
	client := newClient(1)
	defer client.CloseIdleConnections()
	url := public + "/bff/login"
	deadline := time.Now().Add(15 * time.Second)
	for range 300 {
		if err := p.alive(); err != nil {
			return nil, err
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop()
	return nil, errors.New("cloakroom never became ready; log:\n" + p.tail())
}

// cloakroomConfig is the config of the Cloakroom target name: on port,
// with store and a fresh session key, and with frontends > 0 that many
// frontends (see frontendsYAML) in place of the top-level public_url.
func (e *env) cloakroomConfig(name string, port int, store string, frontends int) string {
	key := make([]byte, 32)
	rand.Read(key)
	site := fmt.Sprintf("public_url: http://localhost:%d\n", port)
	if frontends > 0 {
		site = frontendsYAML(fmt.Sprintf("http://localhost:%d", port), frontends)
	}
	cfg := fmt.Sprintf(`# Generated by bench/loadgen for target %s.
listen: 127.0.0.1:%[2]d
%[8]soidc:
  issuer: %[3]s
  client_id: bench
  client_secret: bench-secret
session:
  store: %[4]q
  keys: ["base64:%[5]s"]
# The limiters stay in the chain, as in production, set never to refuse.
rate_limit: {api_per_second: 100000000, login_per_minute: 100000000}
apis:
  - path: /api/
    upstream: %[6]s/api/
    token: user
%[7]s`, name, port, e.issuer, store, base64.StdEncoding.EncodeToString(key), e.upURL, compositesYAML(), site)
	if e.opts.LogLevel != "" {
		cfg += fmt.Sprintf("log_level: %q\n", e.opts.LogLevel)
	}
	return cfg
}

// dummyTicket has the shape of a session ticket (32 random bytes,
// base64url), so direct and bare get requests as large as Cloakroom's.
func dummyTicket() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
