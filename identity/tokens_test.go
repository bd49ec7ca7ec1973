package identity

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"
)

var tokenShape = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){3}-[0-9A-HJKMNP-TV-Z]{4}[0-9A-HJKMNP-TV-Z*~$=U]$`)

func TestNewTokenFormat(t *testing.T) {
	seen := map[Secret]bool{}
	for range 200 {
		tok, err := NewToken(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !tokenShape.MatchString(string(tok)) {
			t.Fatalf("token %q does not have the grouped Crockford shape", string(tok))
		}
		if seen[tok] {
			t.Fatalf("token repeated after %d draws", len(seen))
		}
		seen[tok] = true
		back, err := ParseToken(string(tok))
		if err != nil || back != tok {
			t.Fatalf("ParseToken(%q) = %q, %v", string(tok), string(back), err)
		}
	}
}

// The 24 data symbols carry exactly the 120 random bits, most significant first.
func TestNewTokenEncodesAllBits(t *testing.T) {
	raw := bytes.Repeat([]byte{0xA5}, tokenRandLen)
	tok, err := NewToken(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	data, err := tokenData(string(tok))
	if err != nil {
		t.Fatal(err)
	}
	want := new(big.Int).SetBytes(raw)
	got := new(big.Int)
	for i := range len(data) {
		got.Lsh(got, 5)
		got.Add(got, big.NewInt(int64(strings.IndexByte(crockford, data[i]))))
	}
	if got.Cmp(want) != 0 {
		t.Fatalf("data symbols decode to %x, want %x", got, want)
	}
	mod := new(big.Int).Mod(want, big.NewInt(37)).Int64()
	if c := string(tok)[len(tok)-1]; c != crockfordCheck[mod] {
		t.Fatalf("check symbol %c, want %c (value mod 37 = %d)", c, crockfordCheck[mod], mod)
	}
}

func TestParseTokenForgivesTyping(t *testing.T) {
	tok := Secret("0123A-BCDEF-GHJKM-NPQRS-TVWX") // data only; add the check below
	data := strings.ReplaceAll(string(tok), "-", "")[:tokenDataLen-1] + "1"
	full := groupToken(data + string(checkSymbol(data)))
	variants := []string{
		full,
		strings.ToLower(full),
		strings.ReplaceAll(full, "-", ""),
		strings.ReplaceAll(full, "-", " "),
		"  " + full + "\t",
		strings.Replace(strings.Replace(full, "0", "O", 1), "1", "l", 1),
		strings.Replace(full, "1", "I", 1),
	}
	for _, v := range variants {
		got, err := ParseToken(v)
		if err != nil {
			t.Errorf("ParseToken(%q): %v", v, err)
			continue
		}
		if string(got) != full {
			t.Errorf("ParseToken(%q) = %q, want %q", v, string(got), full)
		}
	}
}

// Every single-symbol substitution and every swap of two different
// neighbouring symbols is caught by the check symbol.
func TestParseTokenCatchesTypos(t *testing.T) {
	tok, err := NewToken(nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := tokenData(string(tok))
	check := string(tok)[len(tok)-1:]
	for i := range tokenDataLen {
		for _, c := range crockford {
			if byte(c) == data[i] {
				continue
			}
			typo := data[:i] + string(c) + data[i+1:] + check
			if _, err := ParseToken(typo); !errors.Is(err, ErrTokenMalformed) {
				t.Fatalf("substitution at %d (%c→%c) not caught: %v", i, data[i], c, err)
			}
		}
		if i+1 < tokenDataLen && data[i] != data[i+1] {
			swapped := data[:i] + string(data[i+1]) + string(data[i]) + data[i+2:] + check
			if _, err := ParseToken(swapped); !errors.Is(err, ErrTokenMalformed) {
				t.Fatalf("swap at %d not caught: %v", i, err)
			}
		}
	}
}

func TestParseTokenRejects(t *testing.T) {
	tok, _ := NewToken(nil)
	s := string(tok)
	cases := map[string]string{
		"empty":          "",
		"short":          s[:len(s)-2],
		"long":           s + "0",
		"U in data":      "U" + s[1:],
		"punctuation":    "!" + s[1:],
		"non-ASCII":      "É" + s[2:],
		"check as data":  "*" + s[1:],
		"all zero wrong": "00000-00000-00000-00000-00001",
	}
	for name, in := range cases {
		if _, err := ParseToken(in); !errors.Is(err, ErrTokenMalformed) {
			t.Errorf("%s: ParseToken(%q) = %v, want ErrTokenMalformed", name, in, err)
		}
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	s := Secret("XYZZY-PLUGH")
	var logs bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&logs, nil))
	l.Info("token", "token", s)
	l.Info("token", slog.Any("t", s))
	out := fmt.Sprintf("%s %v %+v %#v %q", s, s, s, s, s) + logs.String()
	if strings.Contains(out, "XYZZY") {
		t.Fatalf("secret printed: %s", out)
	}
	if !strings.Contains(logs.String(), `"***"`) {
		t.Fatalf("log does not show the redaction marker: %s", logs.String())
	}
}

func TestTokenInfoCheck(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	base := tokenInfo{Email: "a@example.test", Purpose: PurposeEnroll, Created: now.Add(-time.Hour), Expires: now.Add(time.Hour)}
	used := base
	used.Used = now.Add(-time.Minute)
	expired := base
	expired.Expires = now
	cases := []struct {
		name    string
		info    tokenInfo
		email   string
		purpose Purpose
		want    error
	}{
		{"ok", base, "a@example.test", PurposeEnroll, nil},
		{"used", used, "a@example.test", PurposeEnroll, ErrTokenUsed},
		{"expired at the instant", expired, "a@example.test", PurposeEnroll, ErrTokenExpired},
		{"other mailbox", base, "b@example.test", PurposeEnroll, ErrTokenWrongMailbox},
		{"other purpose", base, "a@example.test", PurposeRecover, ErrTokenWrongPurpose},
		{"used, other mailbox", used, "b@example.test", PurposeEnroll, ErrTokenWrongMailbox},
	}
	for _, c := range cases {
		if err := c.info.check(c.email, c.purpose, now); err != c.want {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestTokenHashKeyed(t *testing.T) {
	a := tokenHash([]byte("secret-1"), "ABC")
	b := tokenHash([]byte("secret-2"), "ABC")
	c := tokenHash([]byte("secret-1"), "ABD")
	if bytes.Equal(a, b) || bytes.Equal(a, c) || len(a) != 32 {
		t.Fatal("token hash does not depend on both the server secret and the token")
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add("00000-00000-00000-00000-00000")
	f.Add("abcde-fghjk-mnpqr-stvwx-yz01*")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrTokenMalformed) {
				t.Fatalf("error %v is not ErrTokenMalformed", err)
			}
			return
		}
		if !tokenShape.MatchString(string(tok)) {
			t.Fatalf("accepted %q as %q, not canonical", s, string(tok))
		}
		again, err := ParseToken(string(tok))
		if err != nil || again != tok {
			t.Fatalf("canonical form %q does not parse to itself", string(tok))
		}
	})
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"alice@example.test", "Alice <a@b.c>", " A@B.C ", "a@", "\"x y\"@z.test", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeEmail(s)
		if err != nil {
			if !errors.Is(err, ErrBadEmail) {
				t.Fatalf("error %v is not ErrBadEmail", err)
			}
			return
		}
		if n != strings.ToLower(n) || strings.ContainsAny(n, " <>\"") || strings.Count(n, "@") < 1 {
			t.Fatalf("%q normalised to %q", s, n)
		}
		if again, err := NormalizeEmail(n); err != nil || again != n {
			t.Fatalf("normal form %q does not normalise to itself: %q %v", n, again, err)
		}
	})
}
