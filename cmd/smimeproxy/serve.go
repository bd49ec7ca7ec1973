package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"smimeproxy/config"
	"smimeproxy/internal/app"
)

// runServe runs the proxies and the admin endpoint until SIGINT or SIGTERM
// (ctx), then shuts down, locking every Digital ID.
func runServe(ctx context.Context, s stdio, args []string) int {
	fset := flag.NewFlagSet("smimeproxy serve", flag.ContinueOnError)
	fset.SetOutput(s.err)
	file := fset.String("config", "", "configuration `file` (default ./"+config.DefaultPath+", else the built-in defaults)")
	fset.Usage = func() {
		fmt.Fprint(s.err, "usage: smimeproxy serve [-config F]\n\nRuns the SMTP and IMAP proxies and the admin endpoint until interrupted.\n\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fset.NArg() != 0 {
		fmt.Fprintf(s.err, "smimeproxy serve: unexpected argument %q\n", fset.Arg(0))
		return exitUsage
	}
	cfg, err := config.LoadOrDefault(*file)
	if err != nil {
		var probs *config.Problems
		if errors.As(err, &probs) {
			fmt.Fprintf(s.err, "smimeproxy serve: the configuration has problems (fix them, then check with 'smimeproxy config test'):\n%v\n", err)
		} else {
			fmt.Fprintf(s.err, "smimeproxy serve: %v\n", err)
		}
		return exitUsage
	}
	log := app.NewLogger(s.err, cfg.Log)
	log.Info("starting", "config", cfg.Source(), "store", cfg.Store)
	a, err := app.Start(ctx, cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return exitFailed
	}
	err = a.Wait(ctx)
	if cerr := a.Close(); cerr != nil {
		log.Error("shutdown", "err", cerr)
	}
	if err != nil {
		log.Error("stopped", "err", err)
		return exitFailed
	}
	log.Info("stopped; every Digital ID is locked")
	return exitOK
}
