package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"smimeproxy/admin"
	"smimeproxy/config"
	"smimeproxy/crypto/ca"
)

// adminCLI holds the flags given before the verb.
type adminCLI struct {
	config string
	json   bool
}

// runAdmin talks to the admin API of a running server: address and bearer
// credential come from the configuration ([admin] public_url, token_file).
func runAdmin(ctx context.Context, s stdio, args []string) int {
	a := &adminCLI{}
	fset := flag.NewFlagSet("smimeproxy admin", flag.ContinueOnError)
	fset.SetOutput(s.err)
	fset.StringVar(&a.config, "config", "", "configuration `file` of the server (default ./"+config.DefaultPath+")")
	fset.BoolVar(&a.json, "json", false, "print JSON instead of text")
	fset.Usage = func() {
		fmt.Fprint(s.err, "usage: smimeproxy admin [-config F] [-json] <verb> …\n\n"+
			"  token create -email A [-purpose enroll|recover] [-ttl 72h]\n"+
			"  ids list | ids show A | ids revoke A | ids escrow A [-out DIR]\n"+
			"  trust list | trust add FILE.pem | trust remove FINGERPRINT\n\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	return dispatch(ctx, s, "smimeproxy admin", map[string]command{
		"token": {"issue security tokens (token create)", func(ctx context.Context, s stdio, args []string) int {
			return dispatch(ctx, s, "smimeproxy admin token", map[string]command{
				"create": {"issue a single-use security token for a mailbox", a.tokenCreate},
			}, args)
		}},
		"ids": {"Digital IDs: list, show A, revoke A, escrow A", func(ctx context.Context, s stdio, args []string) int {
			return dispatch(ctx, s, "smimeproxy admin ids", map[string]command{
				"list":   {"list every mailbox's Digital ID", a.idsList},
				"show":   {"show one mailbox's Digital IDs", a.idsShow},
				"revoke": {"revoke a mailbox's Digital ID", a.idsRevoke},
				"escrow": {"save a mailbox's escrowed encryption keys for offline recovery", a.idsEscrow},
			}, args)
		}},
		"trust": {"org-wide trusted roots: list, add FILE, remove FPR", func(ctx context.Context, s stdio, args []string) int {
			return dispatch(ctx, s, "smimeproxy admin trust", map[string]command{
				"list":   {"list the org-wide trusted roots", a.trustList},
				"add":    {"trust the CA certificate in a PEM file org-wide", a.trustAdd},
				"remove": {"remove an org-wide root by SHA-256 fingerprint", a.trustRemove},
			}, args)
		}},
	}, fset.Args())
}

// parse parses a verb's flags (-json may come here too) and checks the
// number of positional arguments.
func (a *adminCLI) parse(s stdio, name, argsUsage string, nargs int, args []string, setup func(*flag.FlagSet)) ([]string, int, bool) {
	f := flag.NewFlagSet("smimeproxy admin "+name, flag.ContinueOnError)
	f.SetOutput(s.err)
	f.BoolVar(&a.json, "json", a.json, "print JSON instead of text")
	if setup != nil {
		setup(f)
	}
	f.Usage = func() {
		fmt.Fprintf(s.err, "usage: smimeproxy admin [-config F] %s %s\n", name, argsUsage)
		f.PrintDefaults()
	}
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, exitOK, false
		}
		return nil, exitUsage, false
	}
	if f.NArg() != nargs {
		fmt.Fprintf(s.err, "smimeproxy admin %s: want %d argument(s) (%s), got %d\n", name, nargs, strings.TrimSpace(argsUsage), f.NArg())
		return nil, exitUsage, false
	}
	return f.Args(), exitOK, true
}

// client builds the API client from the configuration.
func (a *adminCLI) client(s stdio) (*admin.Client, bool) {
	cfg, err := config.LoadOrDefault(a.config)
	if err != nil {
		var probs *config.Problems
		if errors.As(err, &probs) {
			fmt.Fprintf(s.err, "smimeproxy admin: the configuration has problems; run 'smimeproxy config test':\n%v\n", err)
		} else {
			fmt.Fprintf(s.err, "smimeproxy admin: %v\n", err)
		}
		return nil, false
	}
	base := cfg.Admin.PublicURL
	if base == "" {
		scheme := "http"
		if cfg.Admin.ListenTLS == "implicit" {
			scheme = "https"
		}
		base = scheme + "://" + cfg.Admin.Listen
	}
	tok, err := admin.ReadToken(cfg.Admin.TokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(s.err, "smimeproxy admin: the admin token file %s does not exist: `smimeproxy serve` creates it on first start; or name the server's configuration with -config\n", cfg.Admin.TokenFile)
		return nil, false
	}
	if err != nil {
		fmt.Fprintf(s.err, "smimeproxy admin: %v\n", err)
		return nil, false
	}
	hc := &http.Client{Timeout: 2 * time.Minute}
	if strings.HasPrefix(base, "https://") {
		// The endpoint's certificate may come from the built-in CA.
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if pemRoot, err := os.ReadFile(filepath.Join(cfg.CA.Dir, ca.RootCertFile)); err == nil {
			pool.AppendCertsFromPEM(pemRoot)
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return &admin.Client{BaseURL: base, Token: tok, HTTP: hc}, true
}

// fail prints an API or connection error and returns the exit code.
func (a *adminCLI) fail(s stdio, verb string, c *admin.Client, err error) int {
	var apiErr *admin.APIError
	switch {
	case errors.Is(err, admin.ErrUnreachable):
		fmt.Fprintf(s.err, "smimeproxy admin %s: %v — is `smimeproxy serve` running, and is -config its configuration?\n", verb, err)
	case errors.As(err, &apiErr) && apiErr.Code == "unauthorized":
		fmt.Fprintf(s.err, "smimeproxy admin %s: the server refused the admin token: %s; use the token_file of the running server's configuration\n", verb, apiErr.Message)
	case errors.As(err, &apiErr):
		fmt.Fprintf(s.err, "smimeproxy admin %s: %s\n", verb, apiErr)
	default:
		fmt.Fprintf(s.err, "smimeproxy admin %s: %v\n", verb, err)
	}
	return exitFailed
}

func (a *adminCLI) printJSON(s stdio, v any) int {
	enc := json.NewEncoder(s.out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(s.err, "smimeproxy admin: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func (a *adminCLI) tokenCreate(ctx context.Context, s stdio, args []string) int {
	var req admin.TokenRequest
	var ttl time.Duration
	_, code, ok := a.parse(s, "token create", "-email A [-purpose enroll|recover] [-ttl 72h]", 0, args, func(f *flag.FlagSet) {
		f.StringVar(&req.Email, "email", "", "mailbox `address` the token is for (required)")
		f.StringVar(&req.Purpose, "purpose", "enroll", "enroll (first Digital ID) or recover (enrol again, restoring escrowed keys)")
		f.DurationVar(&ttl, "ttl", 72*time.Hour, "how long the token stays redeemable")
	})
	if !ok {
		return code
	}
	if req.Email == "" {
		fmt.Fprintln(s.err, "smimeproxy admin token create: -email is required")
		return exitUsage
	}
	if req.Purpose != "enroll" && req.Purpose != "recover" {
		fmt.Fprintf(s.err, "smimeproxy admin token create: -purpose %q: want enroll or recover\n", req.Purpose)
		return exitUsage
	}
	req.TTL = ttl.String()
	c, ok := a.client(s)
	if !ok {
		return exitUsage
	}
	tok, err := c.CreateToken(ctx, req)
	if err != nil {
		return a.fail(s, "token create", c, err)
	}
	if a.json {
		return a.printJSON(s, tok)
	}
	fmt.Fprintf(s.out, "Security token for %s (%s), redeemable once until %s:\n\n    %s\n\n"+
		"Give it to the user by a channel other than their mailbox; they enter it at %s/enroll.\n",
		tok.Email, tok.Purpose, tok.Expires.UTC().Format("2006-01-02 15:04 MST"), tok.Token, strings.TrimRight(c.BaseURL, "/"))
	return exitOK
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04 MST")
}

func (a *adminCLI) idsList(ctx context.Context, s stdio, args []string) int {
	if _, code, ok := a.parse(s, "ids list", "", 0, args, nil); !ok {
		return code
	}
	c, ok := a.client(s)
	if !ok {
		return exitUsage
	}
	ids, err := c.Identities(ctx)
	if err != nil {
		return a.fail(s, "ids list", c, err)
	}
	if a.json {
		return a.printJSON(s, admin.IdentitiesReply{Identities: ids})
	}
	if len(ids) == 0 {
		fmt.Fprintln(s.out, "No Digital IDs yet. Issue a token with 'smimeproxy admin token create -email A'.")
		return exitOK
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tSTATE\tSOURCE\tUNLOCKED UNTIL\tNAME")
	for _, id := range ids {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id.Email, id.State, id.Source, when(id.UnlockedUntil), id.Name)
	}
	tw.Flush()
	return exitOK
}

func (a *adminCLI) idsShow(ctx context.Context, s stdio, args []string) int {
	pos, code, ok := a.parse(s, "ids show", "ADDRESS", 1, args, nil)
	if !ok {
		return code
	}
	c, ok := a.client(s)
	if !ok {
		return exitUsage
	}
	d, err := c.Identity(ctx, pos[0])
	if err != nil {
		return a.fail(s, "ids show", c, err)
	}
	if a.json {
		return a.printJSON(s, d)
	}
	if d.Current == nil {
		fmt.Fprintf(s.out, "%s has no current Digital ID.\n", d.Email)
	} else {
		printIdentity(s, "Current Digital ID", d.Current)
	}
	for i := range d.Earlier {
		fmt.Fprintln(s.out)
		printIdentity(s, "Earlier Digital ID", &d.Earlier[i])
	}
	return exitOK
}

func printIdentity(s stdio, title string, v *admin.IdentityView) {
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\t%s\n", title+":", v.Name)
	fmt.Fprintf(tw, "  mailbox\t%s\n  state\t%s\n  source\t%s\n  escrowed\t%v\n  created\t%s\n  unlocked until\t%s\n",
		v.Email, v.State, v.Source, v.Escrowed, when(&v.Created), when(v.UnlockedUntil))
	for _, c := range []struct {
		name string
		c    *admin.CertInfo
	}{{"signing cert", v.SigningCert}, {"encryption cert", v.EncryptionCert}} {
		if c.c != nil {
			fmt.Fprintf(tw, "  %s\t%s, serial %s, until %s\n", c.name, c.c.Subject, c.c.Serial, c.c.NotAfter.UTC().Format("2006-01-02"))
		}
	}
	if v.Root != nil {
		fmt.Fprintf(tw, "  root\t%s\n  root SHA-256\t%s\n", v.Root.Subject, v.Root.Fingerprint)
	}
	tw.Flush()
}

func (a *adminCLI) idsRevoke(ctx context.Context, s stdio, args []string) int {
	pos, code, ok := a.parse(s, "ids revoke", "ADDRESS", 1, args, nil)
	if !ok {
		return code
	}
	c, ok := a.client(s)
	if !ok {
		return exitUsage
	}
	if err := c.Revoke(ctx, pos[0]); err != nil {
		return a.fail(s, "ids revoke", c, err)
	}
	if a.json {
		return a.printJSON(s, map[string]any{"email": pos[0], "revoked": true})
	}
	fmt.Fprintf(s.out, "Revoked the Digital ID of %s. Its escrowed encryption keys stay recoverable with a recovery token.\n", pos[0])
	return exitOK
}

func (a *adminCLI) trustList(ctx context.Context, s stdio, args []string) int {
	if _, code, ok := a.parse(s, "trust list", "", 0, args, nil); !ok {
		return code
	}
	c, ok := a.client(s)
	if !ok {
		return exitUsage
	}
	roots, err := c.TrustRoots(ctx)
	if err != nil {
		return a.fail(s, "trust list", c, err)
	}
	if a.json {
		return a.printJSON(s, admin.RootsReply{Roots: roots})
	}
	if len(roots) == 0 {
		fmt.Fprintln(s.out, "No org-wide trusted roots.")
		return exitOK
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHA-256 FINGERPRINT\tFROM\tSUBJECT")
	for _, r := range roots {
		from := "api"
		if r.FromConfig {
			from = "config"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Fingerprint, from, r.Subject)
	}
	tw.Flush()
	return exitOK
}

func (a *adminCLI) trustAdd(ctx context.Context, s stdio, args []string) int {
	pos, code, ok := a.parse(s, "trust add", "FILE.pem", 1, args, nil)
	if !ok {
		return code
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		fmt.Fprintf(s.err, "smimeproxy admin trust add: %v\n", err)
		return exitUsage
	}
	c, ok := a.client(s)
	if !ok {
		return exitUsage
	}
	root, err := c.TrustAdd(ctx, string(data))
	if err != nil {
		return a.fail(s, "trust add", c, err)
	}
	if a.json {
		return a.printJSON(s, root)
	}
	fmt.Fprintf(s.out, "Trusted org-wide: %s\nSHA-256 fingerprint: %s\n", root.Subject, root.Fingerprint)
	return exitOK
}

func (a *adminCLI) trustRemove(ctx context.Context, s stdio, args []string) int {
	pos, code, ok := a.parse(s, "trust remove", "FINGERPRINT", 1, args, nil)
	if !ok {
		return code
	}
	c, ok := a.client(s)
	if !ok {
		return exitUsage
	}
	if err := c.TrustRemove(ctx, pos[0]); err != nil {
		return a.fail(s, "trust remove", c, err)
	}
	if a.json {
		return a.printJSON(s, map[string]any{"fingerprint": pos[0], "removed": true})
	}
	fmt.Fprintf(s.out, "Removed the org-wide root %s.\n", pos[0])
	return exitOK
}
