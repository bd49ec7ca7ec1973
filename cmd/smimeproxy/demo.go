package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"smimeproxy/config"
	"smimeproxy/internal/app"
)

// runDemo runs a self-contained gateway: an in-process upstream mail server,
// both proxies, the admin endpoint and demo users, until SIGINT or SIGTERM.
func runDemo(ctx context.Context, s stdio, args []string) int {
	fset := flag.NewFlagSet("smimeproxy demo", flag.ContinueOnError)
	fset.SetOutput(s.err)
	dir := fset.String("dir", "", "`directory` for store, CA, config and demo.json (default: a temporary one, removed on exit)")
	imapAddr := fset.String("imap", app.DemoIMAPAddr, "IMAP proxy listen `address` (port 0: any free port)")
	smtpAddr := fset.String("smtp", app.DemoSMTPAddr, "SMTP proxy listen `address` (port 0: any free port)")
	adminAddr := fset.String("admin", app.DemoAdminAddr, "admin endpoint listen `address` (port 0: any free port)")
	logLevel := fset.String("log", "info", "log `level`: debug, info, warn or error")
	fset.Usage = func() {
		fmt.Fprint(s.err, "usage: smimeproxy demo [-dir D] [-imap ADDR] [-smtp ADDR] [-admin ADDR]\n\n"+
			"Starts an in-process mail server, both proxies and the admin endpoint on loopback,\n"+
			"with demo users alice@, bob@ (enrolled) and dave@ (to enrol), and writes D/demo.json\n"+
			"and D/smimeproxy.toml.\n\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fset.NArg() != 0 {
		fmt.Fprintf(s.err, "smimeproxy demo: unexpected argument %q\n", fset.Arg(0))
		return exitUsage
	}
	start := time.Now()
	d, cleanup, err := demoDir(*dir)
	if err != nil {
		fmt.Fprintf(s.err, "smimeproxy demo: %v\n", err)
		return exitUsage
	}
	defer cleanup()

	log := app.NewLogger(s.err, config.Log{Level: config.LogLevel(*logLevel), Format: config.LogText})
	demo, err := app.StartDemo(ctx, app.DemoOptions{
		Dir: d, IMAP: *imapAddr, SMTP: *smtpAddr, Admin: *adminAddr, Logger: log, LogLevel: *logLevel,
	})
	if err != nil {
		fmt.Fprintf(s.err, "smimeproxy demo: %v\n", err)
		return exitFailed
	}
	if err := demo.WriteMuttrcs(); err != nil {
		fmt.Fprintf(s.err, "smimeproxy demo: mutt configuration: %v\n", err)
	}
	bin, _ := os.Executable()
	demo.WriteBanner(s.out, bin)
	fmt.Fprintf(s.out, "Started in %.2fs (enrolment of alice and bob %.2fs).\n",
		time.Since(start).Seconds(), demo.Enrolled.Seconds())
	if *dir == "" {
		fmt.Fprintf(s.out, "The directory %s is removed on exit.\n", d)
	}

	err = demo.App.Wait(ctx)
	if cerr := demo.Close(); cerr != nil {
		log.Error("shutdown", "err", cerr)
	}
	if err != nil {
		fmt.Fprintf(s.err, "smimeproxy demo: %v\n", err)
		return exitFailed
	}
	fmt.Fprintln(s.out, "Demo stopped; every Digital ID is locked.")
	return exitOK
}

// demoDir prepares the demo's directory: a fresh temporary one (removed by
// the returned cleanup), or dir, which must be new, empty, or the directory
// of an earlier demo (whose files are replaced: the demo always starts from
// scratch, its mail server keeps nothing).
func demoDir(dir string) (string, func(), error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "smimeproxy-demo-")
		if err != nil {
			return "", nil, err
		}
		return d, func() { os.RemoveAll(d) }, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", nil, fmt.Errorf("-dir: %w", err)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return "", nil, fmt.Errorf("-dir: %w", err)
	}
	if len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(abs, app.DemoJSONFile)); err != nil {
			return "", nil, fmt.Errorf("-dir %s is not empty and holds no earlier demo (%s): give a new or empty directory", abs, app.DemoJSONFile)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(abs, e.Name())); err != nil {
				return "", nil, fmt.Errorf("-dir: clearing the earlier demo: %w", err)
			}
		}
	}
	return abs, func() {}, nil
}
