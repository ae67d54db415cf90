// Command loadgen is Cloakroom's load benchmark. It runs each target as a
// separate process on 127.0.0.1, drives it with concurrent keep-alive
// clients for a fixed time in several scenarios (small, large and slow
// answers, POST bodies, event streams, composites, logins), and reports
// throughput, latency and the CPU the target spent per request, side by
// side with a bare httputil.ReverseProxy that adds a fixed bearer: the
// floor any Go gateway pays.
//
//	loadgen [flags]                                run the benchmark (see -h)
//	loadgen upstream --addr 127.0.0.1:0            the API (see the path* constants)
//	loadgen bareproxy --upstream URL --addr ADDR   the bare reverse proxy
//
// The two server modes print "listening ADDR" on stdout once they accept
// connections. bench/load.sh builds everything and runs it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 {
		switch args[0] {
		case "upstream":
			return serveUpstream(ctx, args[1:], stdout, stderr)
		case "bareproxy":
			return serveBareProxy(ctx, args[1:], stdout, stderr)
		}
	}
	if err := bench(ctx, args, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	return 0
}
