package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"smimeproxy/config"
)

func runConfig(ctx context.Context, s stdio, args []string) int {
	return dispatch(ctx, s, "smimeproxy config", map[string]command{
		"test": {"parse and validate a configuration file, print every problem", runConfigTest},
	}, args)
}

// runConfigTest checks a configuration file. Problems go to stderr as
// file:line: key: message, one per line, and the exit code is exitUsage;
// a good file prints "ok: FILE" and exits exitOK.
func runConfigTest(_ context.Context, s stdio, args []string) int {
	fs := flag.NewFlagSet("smimeproxy config test", flag.ContinueOnError)
	fs.SetOutput(s.err)
	path := fs.String("config", "", "configuration `file` (default ./"+config.DefaultPath+", else the built-in defaults)")
	fs.Usage = func() {
		fmt.Fprintf(s.err, "usage: smimeproxy config test [-config FILE]\n\n"+
			"Parses and validates the configuration and prints every problem as\n"+
			"file:line: key: message. Exit code 0 when valid, 2 otherwise.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(s.err, "smimeproxy config test: unexpected argument %q; name the file with -config\n", fs.Arg(0))
		return exitUsage
	}
	cfg, err := config.LoadOrDefault(*path)
	var probs *config.Problems
	switch {
	case errors.As(err, &probs):
		for _, p := range probs.List {
			fmt.Fprintln(s.err, p)
		}
		fmt.Fprintf(s.err, "%d problem(s) found; fix them and run 'smimeproxy config test' again\n", len(probs.List))
		return exitUsage
	case err != nil:
		fmt.Fprintf(s.err, "smimeproxy config test: %v\n", err)
		return exitUsage
	}
	if cfg.File == "" {
		fmt.Fprintf(s.out, "ok: %s; no ./%s found\n", cfg.Source(), config.DefaultPath)
		return exitOK
	}
	fmt.Fprintf(s.out, "ok: %s\n", cfg.Source())
	return exitOK
}
