package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"smimeproxy/admin"
)

// idsEscrow saves each escrowed encryption key of a mailbox as a DER CMS
// EnvelopedData file (and its certificate as PEM next to it), ready for
// `openssl cms -decrypt` with the key-recovery key (see identity's package
// documentation).
func (a *adminCLI) idsEscrow(ctx context.Context, s stdio, args []string) int {
	out := "."
	pos, code, ok := a.parse(s, "ids escrow", "ADDRESS [-out DIR]", 1, flagsFirst(args, "out"), func(f *flag.FlagSet) {
		f.StringVar(&out, "out", ".", "`directory` the .der files are written to (made if missing)")
	})
	if !ok {
		return code
	}
	c, ok := a.client(s)
	if !ok {
		return exitUsage
	}
	esc, err := c.Escrow(ctx, pos[0])
	if err != nil {
		return a.fail(s, "ids escrow", c, err)
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		fmt.Fprintf(s.err, "smimeproxy admin ids escrow: %v\n", err)
		return exitFailed
	}
	var written []string
	for _, k := range esc.Keys {
		base := filepath.Join(out, escrowFileBase(esc.Email, k))
		if err := writeNew(base+".der", k.Envelope); err != nil {
			return escrowWriteFailed(s, err)
		}
		if err := writeNew(base+".crt", []byte(k.CertificatePEM)); err != nil {
			return escrowWriteFailed(s, err)
		}
		written = append(written, base+".der")
	}
	if a.json {
		return a.printJSON(s, map[string]any{"email": esc.Email, "files": written})
	}
	fmt.Fprintf(s.out, "Escrowed encryption keys of %s (encrypted to the key-recovery certificate, serial %s):\n",
		esc.Email, esc.RecoveryCertificate.Serial)
	for i, k := range esc.Keys {
		cur := ""
		if k.Current {
			cur = "  (current)"
		}
		fmt.Fprintf(s.out, "  %s  certificate serial %s, valid until %s%s\n", written[i], k.Certificate.Serial,
			k.Certificate.NotAfter.UTC().Format("2006-01-02"), cur)
	}
	fmt.Fprintf(s.out, "\nOn the machine holding the key-recovery key (escrow.crt, escrow.key of the CA directory):\n"+
		"  openssl cms -decrypt -inform DER -in FILE.der -recip escrow.crt -inkey escrow.key -binary -out key.der\n"+
		"  openssl pkey -inform DER -in key.der -out key.pem\n")
	return exitOK
}

// flagsFirst moves positional arguments behind the flags, so that
// "A -out DIR" parses like "-out DIR A"; valued names the flags that take
// a separate value.
func flagsFirst(args []string, valued ...string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && slices.Contains(valued, name) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) == 0 {
		return flags
	}
	return append(append(flags, "--"), pos...) // a positional may start with "-"
}

// escrowFileBase names a key's files after the mailbox and the
// certificate serial, so keys of several mailboxes can share a directory.
// The names come from the server: anything but plain characters becomes
// "_", so a reply cannot choose a path.
func escrowFileBase(email string, k admin.EscrowKeyView) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("@.+_-", r):
			return r
		}
		return '_'
	}, email+"-"+k.Certificate.Serial)
}

// writeNew writes a file that must not exist yet, readable by its owner
// only: an earlier export is never overwritten by mistake.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists already: choose another -out directory or move it away", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func escrowWriteFailed(s stdio, err error) int {
	fmt.Fprintf(s.err, "smimeproxy admin ids escrow: %v\n", err)
	return exitFailed
}
