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
	"syscall"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/gctune"
	"github.com/cloakroom/cloakroom/internal/server"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", "cloakroom.yaml", "configuration file")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	cfg, err := config.Load(*path, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	out := newBufferedLog(stderr)
	defer out.Close()
	log := newLogger(out, level)
	if w := cfg.Warnings(); w != nil {
		for _, p := range w.List {
			log.Warn("configuration", "line", p.Line, "key", p.Key, "problem", p.Msg)
		}
	}
	// SIGHUP re-reads the file; a bad one is refused and logged.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	// The first SIGTERM or SIGINT ends ctx (see run); a second one ends
	// shutdown_delay early.
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	hurry := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	go func() {
		for n := 0; ; {
			select {
			case <-sig:
				if n++; n == 2 {
					close(hurry)
					return
				}
			case <-done:
				return
			}
		}
	}()
	// A heap floor for the collector (see internal/gctune), unless the
	// operator chose a GOGC.
	if _, set := os.LookupEnv("GOGC"); !set {
		go gctune.Run(ctx, gctune.DefaultHeadroom, time.Second)
	}
	opts := server.Options{
		Logger:     log,
		AccessLog:  out,
		Reload:     reload,
		Hurry:      hurry,
		LoadConfig: func() (*config.Config, error) { return config.Load(*path, os.LookupEnv) },
	}
	if err := server.Run(ctx, cfg, opts); err != nil {
		out.Close() // the log lines first, then the reason
		fmt.Fprintf(stderr, "cloakroom: %v\n", err)
		return 1
	}
	return 0
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	path := fs.String("config", "cloakroom.yaml", "configuration file")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	cfg, err := config.Load(*path, os.LookupEnv)
	if err == nil {
		if list := append(server.CheckComposites(cfg), server.CheckClientAuth(cfg)...); len(list) > 0 {
			err = &config.Problems{File: *path, List: list}
		}
	}
	var probs *config.Problems
	switch {
	case err == nil:
		if w := cfg.Warnings(); w != nil {
			fmt.Fprintln(stdout, w)
		}
		fmt.Fprintf(stdout, "%s: ok\n", *path)
		return 0
	case errors.As(err, &probs):
		fmt.Fprintln(stdout, err)
		return 1
	default:
		fmt.Fprintln(stderr, err)
		return 1
	}
}
