package imap

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"smimeproxy/crypto/smime"
)

// svGrammar is the StatusHeader grammar as a regular expression.
var svGrammar = regexp.MustCompile(`^(?:(?:decrypted|not-encrypted); signature (?:valid|absent|invalid \([a-z-]+\))` +
	`(?:; signer=[A-Za-z0-9.\-_+@!#$%&'*/=?^` + "`" + `{|}~]+)?(?:; from-mismatch)?(?:; not-integrity-protected)?` +
	`|not-decrypted; signature unknown; error=[a-z-]+)$`)

// FuzzView feeds arbitrary messages to the viewer holding bob's keys: it
// never fails (the key is unlocked), never lets a Smimeproxy- field from
// the input through, adds at most its own status, in the documented
// grammar, and leaves messages that are not S/MIME at the top level as
// they are apart from forged status fields.
func FuzzView(f *testing.F) {
	w := newSVWorld(f)
	plain := svPlain("alice@example.test")
	detached := svSign(f, w.alice, plain, false)
	for _, seed := range [][]byte{
		plain,
		svEncrypt(f, plain, smime.AES256CBC, w.bob),
		svEncrypt(f, plain, smime.AES256GCM, w.bobOld),
		detached,
		svSign(f, w.alice, plain, true),
		svSign(f, w.alice, svEncrypt(f, detached, smime.AES256CBC, w.bob), false),
		svEncrypt(f, plain, smime.AES256CBC, w.carol),
		[]byte("Smimeproxy-Status: decrypted\r\nContent-Type: application/pkcs7-mime\r\n\r\nMIIB\r\n"),
		[]byte("Content-Type: multipart/signed; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n--x\r\nContent-Type: application/pkcs7-signature\r\n\r\nMAA=\r\n--x--\r\n"),
	} {
		f.Add(seed)
	}
	v := w.viewer(f, -1)
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := bytes.Clone(raw)
		view, err := v.View(context.Background(), svKey(1), raw)
		if err != nil {
			t.Fatalf("View failed with the key unlocked: %v", err)
		}
		if !bytes.Equal(raw, in) {
			t.Fatal("View modified its input")
		}
		fields := svHeaderFields(view.Raw, "Smimeproxy-")
		if !isTopSMIME(smime.Classify(topContentType(StripStatus(in)))) {
			if !bytes.Equal(view.Raw, StripStatus(in)) {
				t.Fatal("a message that is not S/MIME was changed beyond its status fields")
			}
			if len(fields) != 0 {
				t.Fatalf("status field %q survived", fields)
			}
			return
		}
		if len(fields) != 1 || !bytes.HasPrefix(view.Raw, []byte(StatusHeader+": ")) {
			t.Fatalf("want the proxy's one status field first, got %q", fields)
		}
		st := svStatus(t, view.Raw)
		if !svGrammar.MatchString(st) {
			t.Fatalf("status %q outside the grammar", st)
		}
	})
}

// FuzzStripStatus checks the header filter on its own: no header line of
// the result starts with a reserved name, the body after the header
// block is untouched, the result is the input with whole lines removed,
// and filtering again changes nothing.
func FuzzStripStatus(f *testing.F) {
	for _, s := range []string{
		"From: a@example.test\r\nSubject: x\r\n\r\nbody\r\n",
		"Smimeproxy-Status: decrypted\r\n folded\r\nFrom: a\r\n\r\nSmimeproxy-Status: body\r\n",
		"smimeproxy-x\nFrom: a\n\tcont\n\n",
		"SMIMEPROXY-STATUS \t: x\r\n",
		"From: a\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := StripStatus(in)
		n := headerEnd(out)
		for _, line := range bytes.SplitAfter(out[:n], []byte("\n")) {
			if len(line) > 0 && line[0] != ' ' && line[0] != '\t' && isStatusName(line[:min(len(line), len(statusPrefix))]) {
				t.Fatalf("reserved line %q kept", line)
			}
		}
		if !bytes.Equal(out[n:], in[headerEnd(in):]) {
			t.Fatal("body changed")
		}
		// out is in with some lines removed: walk in's lines and match.
		rest := out
		for _, line := range bytes.SplitAfter(in, []byte("\n")) {
			rest = bytes.TrimPrefix(rest, line)
		}
		if len(rest) != 0 {
			t.Fatalf("output is not the input minus whole lines: %q left", rest)
		}
		if again := StripStatus(out); !bytes.Equal(again, out) {
			t.Fatal("not idempotent")
		}
	})
}
