package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/cloakroom/cloakroom/internal/demo"
	"github.com/cloakroom/cloakroom/internal/server"
)

// runDemo starts the demo provider and API, then the gateway in front of
// them on localhost. Everything listens on the loopback interface only: the
// gateway is addressed as localhost, the provider and API as 127.0.0.1 —
// another site, so the browser treats the sign-in as the cross-site round
// trip it is in production.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	port := fs.Int("port", 8080, "port of the gateway on localhost; 0 picks a free one (a busy 8080 does too)")
	verbose := fs.Bool("v", false, "log at debug level")
	store := fs.String("store", "memory", "session store: memory, cookie, file:PATH or a redis:// URL")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	d, err := startDemo(ctx, demoSettings{port: *port, store: *store}, newLogger(stderr, level))
	if err != nil {
		fmt.Fprintf(stderr, "cloakroom demo: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Cloakroom demo: open the shop at %s/ and the admin console at %s, two frontends with sessions of their own;\n sign in as alice/alice (role admin), bob/bob or carol/carol.\n", d.URL, d.AdminURL)
	fmt.Fprintf(stdout, "(development OpenID provider at %s, its account page with \"sign out everywhere\" at %s/account;\n not for production; Ctrl-C stops everything)\n", d.Backends.IssuerURL, d.Backends.IssuerURL)
	if err := <-d.Done; err != nil {
		fmt.Fprintf(stderr, "cloakroom demo: %v\n", err)
		return 1
	}
	return 0
}

// demoRun is a running demo.
type demoRun struct {
	URL      string // http://localhost:PORT, the shop
	AdminURL string // http://localhost:PORT/admin/, the admin console
	Backends *demo.Backends
	Done     <-chan error // the gateway's result once ctx ends
}

// demoSettings are the demo's knobs; providerHost is for tests (see
// demo.Options.ProviderHost).
type demoSettings struct {
	port         int
	store        string
	providerHost string
}

func startDemo(ctx context.Context, set demoSettings, log *slog.Logger) (*demoRun, error) {
	port, store := set.port, set.store
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil && port == 8080 {
		ln, err = net.Listen("tcp", "127.0.0.1:0") // the default port is busy
	}
	if err != nil {
		return nil, err
	}
	public := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	// Short-lived access tokens, so refresh (with rotation and reuse
	// detection at the provider) happens while one looks at the demo.
	be, err := demo.StartBackends(ctx, demo.Options{PublicURL: public, Logger: log, AccessTokenTTL: 2 * time.Minute, ProviderHost: set.providerHost})
	if err != nil {
		ln.Close()
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		defer be.Close()
		cfg := demoConfig(be)
		cfg.Session.Store = store
		done <- server.Run(ctx, cfg, server.Options{Logger: log, Listener: ln, Files: map[string]fs.FS{
			demoShopFrontend:  demo.SPA(),
			demoAdminFrontend: demo.AdminSPA(),
		}})
	}()
	return &demoRun{URL: public, AdminURL: public + demo.AdminPath, Backends: be, Done: done}, nil
}
