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
