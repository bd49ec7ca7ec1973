package config

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse: configuration files are
// outside input. Whatever the input, Parse must return either a config
// that satisfies the validated invariants or problems that point into the
// file.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(examplePath); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"[imap]\nlisten = \"127.0.0.1:1143\"\nlisten_tsl = \"none\"\n",
		"keys.remember_max = \"30h\"\n[keys]\nremember_default = \"1d\"\n",
		"imap = { listen = \"1143\", upstream_tls = \"none\" }\n",
		"[ca]\norg = \"\"\"\nbogus = 1\n\"\"\"\nbogus = 2\n",
		"[trust]\nroots = [\n  'x = y',\n  # frob = 1\n]\nfrob = 2\n",
		"[[imap]]\nlisten = 1\n[smtp]\nmax_message_size = \"50MB\"\n",
		"[\"quoted.table\"]\n'lit' = 1\n\"a\\\"b\" = 2\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		nlines := bytes.Count(data, []byte("\n")) + 1
		for k, l := range scanKeyLines(data) {
			if l < 1 || l > nlines {
				t.Fatalf("key %q on line %d of %d", k, l, nlines)
			}
		}
		cfg, err := Parse("fuzz.toml", data)
		if err != nil {
			var probs *Problems
			if !errors.As(err, &probs) || len(probs.List) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty *Problems", err, err)
			}
			for _, p := range probs.List {
				if p.File != "fuzz.toml" || p.Line < 0 || p.Line > nlines || p.Message == "" {
					t.Fatalf("bad problem %+v in a file of %d lines", p, nlines)
				}
			}
			return
		}
		k := cfg.Keys
		if k.RememberDefault.Std() <= 0 || k.RememberDefault > k.RememberMax || k.RememberMax.Std() > MaxRemember {
			t.Fatalf("accepted keys %+v", k)
		}
		if !cfg.Policy.Sign.Valid() || !cfg.Policy.Encrypt.Valid() {
			t.Fatalf("accepted policy %+v", cfg.Policy)
		}
		if (cfg.TLS.Cert == "") != (cfg.TLS.Key == "") {
			t.Fatalf("accepted tls %+v", cfg.TLS)
		}
	})
}
