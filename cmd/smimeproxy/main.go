// Command smimeproxy is a transparent S/MIME security proxy between mail
// clients and their IMAP and SMTP servers. This file only holds the table of
// subcommands; each subcommand lives in its own file and wires packages
// together without logic of its own.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"smimeproxy/crypto/smime"
)

// Exit codes shared by every subcommand.
const (
	exitOK     = 0 // success
	exitFailed = 1 // the operation failed (bad signature, wrong key, …)
	exitUsage  = 2 // usage or configuration error
)

// stdio is what a subcommand reads from and writes to; tests pass buffers.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// command is one entry of a command table. run gets the arguments after
// the command's own name and returns the process exit code.
type command struct {
	summary string
	run     func(ctx context.Context, io stdio, args []string) int
}

func topCommands() map[string]command {
	return map[string]command{
		"serve":   {"run the proxies and the admin endpoint", runServe},
		"demo":    {"self-contained demo with in-process mail servers", runDemo},
		"config":  {"check a configuration file (config test)", runConfig},
		"admin":   {"talk to the admin API of a running server", runAdmin},
		"smime":   {"offline S/MIME: sign, verify, encrypt, decrypt", runSmime},
		"version": {"print version and VCS revision", runVersion},
	}
}

func main() {
	// The S/MIME library's algorithm choices are process-wide; set them once.
	smime.ConfigureLibrary()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, stdio{os.Stdin, os.Stdout, os.Stderr}, "smimeproxy", topCommands(), os.Args[1:])
	stop()
	os.Exit(code)
}

// dispatch runs the command named by args[0] from table, or prints the
// table's usage and returns exitUsage.
func dispatch(ctx context.Context, s stdio, prog string, table map[string]command, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		printUsage(s.err, prog, table)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := table[args[0]]
	if !ok {
		fmt.Fprintf(s.err, "%s: unknown command %q; run '%s help' for the list\n", prog, args[0], prog)
		return exitUsage
	}
	return cmd.run(ctx, s, args[1:])
}

func printUsage(w io.Writer, prog string, table map[string]command) {
	names := make([]string, 0, len(table))
	for name := range table {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", prog)
	for _, name := range names {
		fmt.Fprintf(w, "  %-8s %s\n", name, table[name].summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's flags.\n", strings.TrimSpace(prog))
}
