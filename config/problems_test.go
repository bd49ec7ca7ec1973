package config

import (
	"errors"
	"strings"
	"testing"
)

type wantProblem struct {
	line int
	key  string
	msg  string // substring of the message
}

// TestProblems checks each kind of problem with the line it is reported on.
func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []wantProblem // nil: the file must be valid
	}{
		{"unknown key with suggestion", "[imap]\nlisten = \"127.0.0.1:1143\"\nlisten_tsl = \"none\"\n",
			[]wantProblem{{3, "imap.listen_tsl", `did you mean "listen_tls"`}}},
		{"unknown key lists the table", "[smtp]\n\nfrobnicate = true\n",
			[]wantProblem{{3, "smtp.frobnicate", "[smtp] has: listen, listen_tls"}}},
		{"unknown table", "# c\n[imapx]\nlisten = 1\n",
			[]wantProblem{{2, "imapx", `unknown table; did you mean "imap"`}}},
		{"unknown top-level key", "listen = \"x\"\n",
			[]wantProblem{{1, "listen", "unknown key"}}},
		{"wrong type", "[smtp]\nmax_recipients = \"ten\"\n",
			[]wantProblem{{2, "smtp.max_recipients", "must be an integer, not a string"}}},
		{"table given as value", "imap = \"x\"\n",
			[]wantProblem{{1, "imap", "must be a table [imap]"}}},
		{"array element type", "[trust]\nroots = [\"a.pem\", 3]\n",
			[]wantProblem{{2, "trust.roots", "element 2 must be a string"}}},
		{"bad duration", "[keys]\nremember_default = \"30 minutes\"\n",
			[]wantProblem{{2, "keys.remember_default", `invalid duration "30 minutes"`}}},
		{"duration as integer", "[keys]\n\nremember_max = 300\n",
			[]wantProblem{{3, "keys.remember_max", "must be a duration string"}}},
		{"idle lock too short", "[keys]\nidle_lock = \"10s\"\n",
			[]wantProblem{{2, "keys.idle_lock", "must be 0 (off) or at least 1m"}}},
		{"bad size", "[imap]\ncache_size = \"256 MiBs\"\n",
			[]wantProblem{{2, "imap.cache_size", "unit must be B, KB, MB or GB"}}},
		{"negative size", "[smtp]\nmax_message_size = -5\n",
			[]wantProblem{{2, "smtp.max_message_size", "must not be negative"}}},
		{"message size out of range", "[smtp]\nmax_message_size = 100\n",
			[]wantProblem{{2, "smtp.max_message_size", "between 1KB and 4GB"}}},
		{"remember_default longer than remember_max", "[keys]\nremember_default = \"6h\"\nremember_max = \"5h\"\n",
			[]wantProblem{{2, "keys.remember_default", "6h is longer than keys.remember_max (5h)"}}},
		{"remember_default longer than default remember_max", "[keys]\nremember_default = \"6h\"\n",
			[]wantProblem{{2, "keys.remember_default", "longer than keys.remember_max (5h)"}}},
		{"remember_max over a day", "[keys]\nremember_max = \"2d\"\n",
			[]wantProblem{{2, "keys.remember_max", "at most 24h"}}},
		{"remember_default under a minute", "[keys]\nremember_default = \"10s\"\n",
			[]wantProblem{{2, "keys.remember_default", "at least 1m"}}},
		{"listen not host:port", "[imap]\nlisten = \"1143\"\n",
			[]wantProblem{{2, "imap.listen", "not host:port"}}},
		{"listen port out of range", "[smtp]\nlisten = \"127.0.0.1:70000\"\n",
			[]wantProblem{{2, "smtp.listen", "from 0 to 65535"}}},
		{"upstream without host", "[imap]\nupstream = \":993\"\n",
			[]wantProblem{{2, "imap.upstream", "has no host"}}},
		{"upstream port zero", "[smtp]\nupstream = \"smtp.example.com:0\"\n",
			[]wantProblem{{2, "smtp.upstream", "from 1 to 65535"}}},
		{"plaintext listen on all interfaces", "[imap]\nlisten = \":1143\"\nlisten_tls = \"none\"\n",
			[]wantProblem{{3, "imap.listen_tls", "loopback"}}},
		{"plaintext listen on a LAN address", "[smtp]\nlisten_tls = \"none\"\nlisten = \"192.0.2.7:1587\"\n",
			[]wantProblem{{2, "smtp.listen_tls", "loopback"}}},
		{"plaintext upstream not loopback", "[imap]\nupstream_tls = \"none\"\n",
			[]wantProblem{{2, "imap.upstream_tls", "imap.upstream is a loopback"}}},
		{"plaintext on loopback is fine", "[imap]\nlisten = \"[::1]:1143\"\nlisten_tls = \"none\"\nupstream = \"localhost:143\"\nupstream_tls = \"none\"\n" +
			"[smtp]\nlisten_tls = \"none\"\nupstream = \"127.0.0.1:25\"\nupstream_tls = \"none\"\n", nil},
		{"unknown tls mode", "[smtp]\nupstream_tls = \"ssl\"\n",
			[]wantProblem{{2, "smtp.upstream_tls", `"ssl" is not one of: starttls, implicit, none`}}},
		{"tls cert without key", "[tls]\ncert = \"proxy.pem\"\n",
			[]wantProblem{{2, "tls.cert", "tls.key is not"}}},
		{"tls key without cert", "[tls]\n\nkey = \"proxy.key\"\n",
			[]wantProblem{{3, "tls.key", "tls.cert is not"}}},
		{"tls bad name", "[tls]\nnames = [\"ok.example\", \"bad name\"]\n",
			[]wantProblem{{2, "tls.names", `"bad name"`}}},
		{"tls version", "[tls]\nmin_version = \"1.1\"\n",
			[]wantProblem{{2, "tls.min_version", "1.2, 1.3"}}},
		{"store driver", "[store]\ndriver = \"mysql\"\n",
			[]wantProblem{{2, "store.driver", "sqlite, postgres"}}},
		{"sqlite with a URL", "[store]\ndsn = \"postgres://u:pw@db/x\"\n",
			[]wantProblem{{2, "store.dsn", `driver = "sqlite" needs a file path`}}},
		{"sqlite file URIs are paths", "[store]\ndsn = \"file:///var/lib/smimeproxy/p.db?_pragma=foreign_keys(1)\"\n", nil},
		{"postgres with a path", "[store]\ndriver = \"postgres\"\n",
			[]wantProblem{{1, "store.dsn", "postgres:// URL or a key=value"}}},
		{"postgres URL and key=value both fine", "[store]\ndriver = \"postgres\"\ndsn = \"postgresql://proxy@db.internal/smimeproxy?sslmode=verify-full\"\n", nil},
		{"empty dsn", "[store]\ndsn = \"\"\n",
			[]wantProblem{{2, "store.dsn", "must not be empty"}}},
		{"policy enum", "[policy]\nsign = \"sometimes\"\nencrypt = \"Always\"\n",
			[]wantProblem{{2, "policy.sign", "always, when-possible, never"}, {3, "policy.encrypt", `"Always" is not one of`}}},
		{"encrypt always with sign never is allowed", "[policy]\nsign = \"never\"\nencrypt = \"always\"\n", nil},
		{"admin remote without TLS", "[admin]\nlisten = \"192.0.2.1:8080\"\n",
			[]wantProblem{{2, "admin.listen", "allow_remote_plaintext"}}},
		{"admin remote with HTTPS", "[admin]\nlisten = \"192.0.2.1:8443\"\nlisten_tls = \"implicit\"\n", nil},
		{"admin remote behind a proxy", "[admin]\nlisten = \"192.0.2.1:8080\"\nallow_remote_plaintext = true\n", nil},
		{"admin on all interfaces needs public_url", "[admin]\nlisten = \"0.0.0.0:8443\"\nlisten_tls = \"implicit\"\n",
			[]wantProblem{{1, "admin.public_url", "must be set"}}},
		{"admin starttls is not HTTP", "[admin]\nlisten_tls = \"starttls\"\n",
			[]wantProblem{{2, "admin.listen_tls", "none, implicit"}}},
		{"admin public_url", "[admin]\npublic_url = \"ftp://x\"\n",
			[]wantProblem{{2, "admin.public_url", "absolute http:// or https://"}}},
		{"admin session", "[admin]\nsession_ttl = \"30d\"\n",
			[]wantProblem{{2, "admin.session_ttl", "between 1m and 7d"}}},
		{"same port twice", "[imap]\nlisten = \"127.0.0.1:1587\"\n",
			[]wantProblem{{2, "imap.listen", "same port as smtp.listen"}}},
		{"port 0 twice is fine", "[imap]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n", nil},
		{"ca validity and key type", "[ca]\nkey_type = \"rsa1024\"\nvalidity = \"900d\"\n",
			[]wantProblem{{2, "ca.key_type", "rsa2048"}, {3, "ca.validity", "between 1d and 825d"}}},
		{"ca key type the CA does not make", "[ca]\nkey_type = \"rsa4096\"\n",
			[]wantProblem{{2, "ca.key_type", "rsa2048, rsa3072, p256, p384"}}},
		{"ca key type p384", "[ca]\nkey_type = \"p384\"\n", nil},
		{"ca org empty", "[ca]\norg = \"  \"\n",
			[]wantProblem{{2, "ca.org", "must not be empty"}}},
		{"identity domains", "[identity]\ndomains = [\"example.org\", \"@example.net\", \"EXAMPLE.org\"]\n",
			[]wantProblem{{2, "identity.domains", `"@example.net"`}, {2, "identity.domains", "listed twice"}}},
		{"trust roots twice", "[trust]\nroots = [\"a.pem\", \"a.pem\"]\n",
			[]wantProblem{{2, "trust.roots", "listed twice"}}},
		{"log level", "[log]\nlevel = \"verbose\"\nformat = \"xml\"\n",
			[]wantProblem{{2, "log.level", "debug, info, warn, error"}, {3, "log.format", "text, json"}}},
		{"syntax error", "[imap]\nlisten = \"127.0.0.1:1143\"\nupstream = imap.example.com\n",
			[]wantProblem{{3, "", "TOML syntax"}}},
		{"dotted keys", "keys.remember_max = \"30h\"\n",
			[]wantProblem{{1, "keys.remember_max", "at most 24h"}}},
		{"inline table", "[policy]\n\nimap = 1\n\nlog = { level = \"loud\" }\n",
			[]wantProblem{{3, "policy.imap", "unknown key"}, {5, "policy.log", "unknown table"}}},
		{"inline table keys", "imap = { listen = \"1143\", upstream_tls = \"none\" }\n",
			[]wantProblem{{1, "imap.listen", "not host:port"}, {1, "imap.upstream_tls", "loopback"}}},
		{"keys inside strings are not keys", "[ca]\norg = \"\"\"\nbogus = 1\n\"\"\"\nbogus = 2\n",
			[]wantProblem{{5, "ca.bogus", "unknown key"}}},
		{"keys inside arrays and literal strings are not keys", "[trust]\nroots = [\n  'x = y',\n  # frob = 1\n]\nfrob = 2\n",
			[]wantProblem{{6, "trust.frob", "unknown key"}}},
		{"CRLF line ends", "[keys]\r\n\r\nremember_max = \"2d\"\r\n",
			[]wantProblem{{3, "keys.remember_max", "at most 24h"}}},
		{"byte order mark", "\uFEFFkeys.remember_max = \"2d\"\n",
			[]wantProblem{{1, "keys.remember_max", "at most 24h"}}},
		{"indented headers and keys", "  [log]\n\t level = \"loud\" # comment\n",
			[]wantProblem{{2, "log.level", "not one of"}}},
		{"every problem, in file order", "[smtp]\nmax_recipients = 0\nbogus = 1\n[keys]\nremember_default = \"1y\"\n[log]\nlevel = \"x\"\n",
			[]wantProblem{{2, "smtp.max_recipients", "between 1 and 10000"}, {3, "smtp.bogus", "unknown key"},
				{5, "keys.remember_default", "invalid duration"}, {7, "log.level", "not one of"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("test.toml", []byte(tt.toml))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected problems:\n%v", err)
				}
				if cfg == nil {
					t.Fatal("nil config without error")
				}
				return
			}
			var probs *Problems
			if !errors.As(err, &probs) {
				t.Fatalf("error %v (%T), want *Problems", err, err)
			}
			if len(probs.List) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(probs.List), len(tt.want), err)
			}
			for i, w := range tt.want {
				p := probs.List[i]
				if p.File != "test.toml" || p.Line != w.line || p.Key != w.key || !strings.Contains(p.Message, w.msg) {
					t.Errorf("problem %d = %q (line %d, key %q)\nwant line %d, key %q, message containing %q",
						i, p, p.Line, p.Key, w.line, w.key, w.msg)
				}
			}
		})
	}
}

// TestProblemsNeverQuoteTheDSN guards against a postgres password reaching
// the output of `config test`.
func TestProblemsNeverQuoteTheDSN(t *testing.T) {
	for _, doc := range []string{
		"[store]\ndriver = \"postgres\"\ndsn = \"postgres://user:hunter2@[bad/x\"\n",
		"[store]\ndriver = \"postgres\"\ndsn = \"user hunter2\"\n",
		"[store]\ndsn = \"postgres://user:hunter2@db/x\"\n",
	} {
		_, err := Parse("t.toml", []byte(doc))
		if err == nil {
			t.Fatalf("no problem for %q", doc)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("problem text reveals the DSN: %v", err)
		}
	}
}

func TestProblemFormat(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{"a.toml", 3, "imap.listen", "bad"}, "a.toml:3: imap.listen: bad"},
		{Problem{"a.toml", 0, "keys.remember_max", "bad"}, "a.toml: keys.remember_max: bad"},
		{Problem{"a.toml", 7, "", "TOML syntax: x"}, "a.toml:7: TOML syntax: x"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	ps := &Problems{List: []Problem{tests[0].p, tests[2].p}}
	if got, want := ps.Error(), tests[0].want+"\n"+tests[2].want; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
