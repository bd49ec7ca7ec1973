package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads, decodes and validates the file at path. Problems with the
// content are returned as a *Problems; a file that cannot be read gives an
// error wrapping the fs error (errors.Is(err, fs.ErrNotExist) works).
// Besides what Parse checks, Load checks that files which must exist
// before the first start (tls cert and key, trust roots, upstream CA
// files) do.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	cfg, probs, lines := parse(path, data)
	if len(probs.List) == 0 {
		checkFiles(cfg, &validator{file: path, lines: lines, probs: probs})
	}
	if err := probs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadOrDefault loads path; when path is empty it loads DefaultPath from
// the working directory, or, when that file does not exist, returns
// Default (whose Source says so).
func LoadOrDefault(path string) (*Config, error) {
	if path != "" {
		return Load(path)
	}
	cfg, err := Load(DefaultPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), nil
	}
	return cfg, err
}

// Parse decodes and validates data as the file name, without touching the
// file system; relative paths are resolved against name's directory. The
// error, if any, is a *Problems.
func Parse(name string, data []byte) (*Config, error) {
	cfg, probs, _ := parse(name, data)
	if err := probs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func parse(name string, data []byte) (*Config, *Problems, keyLines) {
	probs := &Problems{}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			probs.add(Problem{File: name, Line: pe.Position.Line, Message: "TOML syntax: " + pe.Message})
		} else {
			probs.add(Problem{File: name, Message: "TOML syntax: " + err.Error()})
		}
		return nil, probs, nil
	}
	lines := scanKeyLines(data)
	v := &validator{file: name, lines: lines, probs: probs}
	cfg := Default()
	cfg.File = name
	decodeTable(v, "", raw, cfg)
	validate(cfg, v)
	cfg.resolvePaths(filepath.Dir(name))
	return cfg, probs, lines
}

// resolvePaths makes relative paths relative to dir.
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if c.Store.Driver == DriverSQLite {
		c.Store.DSN = resolveSQLite(c.Store.DSN, dir)
	}
	abs(&c.IMAP.UpstreamCA)
	abs(&c.SMTP.UpstreamCA)
	abs(&c.TLS.Cert)
	abs(&c.TLS.Key)
	abs(&c.Admin.TokenFile)
	abs(&c.CA.Dir)
	abs(&c.Legacy.Dir)
	for i := range c.Trust.Roots {
		abs(&c.Trust.Roots[i])
	}
}

// resolveSQLite resolves a sqlite DSN: a plain path or a "file:" URI whose
// path part is relative; in-memory databases stay as they are.
func resolveSQLite(dsn, dir string) string {
	if dsn == "" || dsn == ":memory:" || strings.HasPrefix(dsn, "file::memory:") {
		return dsn
	}
	if rest, ok := strings.CutPrefix(dsn, "file:"); ok {
		path, query, hasQuery := strings.Cut(rest, "?")
		if path == "" || filepath.IsAbs(path) || strings.HasPrefix(path, "//") {
			return dsn
		}
		out := "file:" + filepath.Join(dir, path)
		if hasQuery {
			out += "?" + query
		}
		return out
	}
	if filepath.IsAbs(dsn) {
		return dsn
	}
	return filepath.Join(dir, dsn)
}

// checkFiles reports configured input files that cannot be read.
func checkFiles(c *Config, v *validator) {
	check := func(key, path string) {
		if path == "" {
			return
		}
		f, err := os.Open(path)
		if err != nil {
			v.bad(key, "cannot read %s: %v", path, errors.Unwrap(err))
			return
		}
		f.Close()
	}
	check("tls.cert", c.TLS.Cert)
	check("tls.key", c.TLS.Key)
	check("imap.upstream_ca", c.IMAP.UpstreamCA)
	check("smtp.upstream_ca", c.SMTP.UpstreamCA)
	for _, r := range c.Trust.Roots {
		check("trust.roots", r)
	}
}
