// Command cloakroom is the Backend-for-Frontend security gateway.
//
//	cloakroom serve [--config cloakroom.yaml]   run the gateway
//	cloakroom check [--config cloakroom.yaml]   validate the file, every problem with its line
//	cloakroom demo  [--port 8080]               everything on localhost, nothing to configure
//	cloakroom sessions list|revoke ...          operator view of server-side sessions
//	cloakroom version                           version and build info
//
// Exit codes: 0 ok, 1 bad config or refused start, 2 usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: cloakroom <command> [flags]

commands:
  serve    [--config cloakroom.yaml]  run the gateway
  check    [--config cloakroom.yaml]  validate the configuration
  demo     [--port 8080]              run a self-contained demo on localhost
  sessions list|revoke ...            operator view of server-side sessions
  version                             print version and build info
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "sessions":
		return sessions(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		version(stdout)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cloakroom: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// parse parses flags; it reports 2 for usage errors, 0 after --help.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cloakroom %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func version(w io.Writer) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(w, "cloakroom (unknown build)")
		return
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	fmt.Fprintf(w, "cloakroom %s\n", v)
	if rev != "" {
		fmt.Fprintf(w, "revision %s (modified: %s)\n", rev, modified)
	}
	fmt.Fprintf(w, "%s %s\n", bi.GoVersion, bi.Path)
}
