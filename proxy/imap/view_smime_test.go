package imap

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
)

func TestViewStatusPerKind(t *testing.T) {
	w := newSVWorld(t)
	plain := svPlain("alice@example.test")
	detached := svSign(t, w.alice, plain, false)
	cases := []struct {
		name   string
		raw    []byte
		status string
		// exact: the view is the original with only the status added.
		exact bool
		// innerType is the Content-Type the view's top level must have.
		innerType string
	}{
		{"enveloped aes256-cbc", svEncrypt(t, plain, smime.AES256CBC, w.bob),
			"decrypted; signature absent; not-integrity-protected", false, "text/plain"},
		{"authenveloped aes256-gcm", svEncrypt(t, plain, smime.AES256GCM, w.bob),
			"decrypted; signature absent", false, "text/plain"},
		{"old encryption key", svEncrypt(t, plain, smime.AES128GCM, w.bobOld),
			"decrypted; signature absent", false, "text/plain"},
		{"two recipients, bob second", svEncrypt(t, plain, smime.AES256GCM, w.carol, w.bob),
			"decrypted; signature absent", false, "text/plain"},
		{"opaque signed", svSign(t, w.alice, plain, true),
			"not-encrypted; signature valid; signer=alice@example.test", false, "text/plain"},
		{"detached signed passes byte for byte", detached,
			"not-encrypted; signature valid; signer=alice@example.test", true, ""},
		{"signed then encrypted (cbc)", svEncrypt(t, detached, smime.AES256CBC, w.bob, w.alice),
			"decrypted; signature valid; signer=alice@example.test", false, "multipart/signed"},
		{"opaque signed then encrypted (gcm)", svEncrypt(t, svSign(t, w.alice, plain, true), smime.AES256GCM, w.bob),
			"decrypted; signature valid; signer=alice@example.test", false, "text/plain"},
		{"triple wrap", svSign(t, w.alice, svEncrypt(t, detached, smime.AES256CBC, w.bob), false),
			"decrypted; signature valid; signer=alice@example.test", false, "multipart/signed"},
		{"untrusted signer", svSign(t, w.stranger, plain, false),
			"not-encrypted; signature invalid (untrusted-signer); signer=alice@example.test", true, ""},
		{"signed by someone else than From", svSign(t, w.alice, svPlain("ceo@example.test"), false),
			"not-encrypted; signature valid; signer=alice@example.test; from-mismatch", true, ""},
		{"display name that looks like the signer", svSign(t, w.alice, svPlain(`"alice@example.test" <mallory@evil.test>`), true),
			"not-encrypted; signature valid; signer=alice@example.test; from-mismatch", false, "text/plain"},
		{"not for this user", svEncrypt(t, plain, smime.AES256CBC, w.carol),
			"not-decrypted; signature unknown; error=no-matching-key", true, ""},
		{"garbage cms", []byte("From: x@example.test\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\r\n"),
			"not-decrypted; signature unknown; error=malformed", true, ""},
		{"not base64 at all", []byte("Content-Type: application/x-pkcs7-mime; name=smime.p7m\r\n\r\n%%% not cms %%%\r\n"),
			"not-decrypted; signature unknown; error=malformed", true, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := w.viewer(t, 0)
			view, err := v.View(context.Background(), svKey(uint32(i+1)), tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got := svStatus(t, view.Raw); got != tc.status {
				t.Fatalf("status %q, want %q", got, tc.status)
			}
			if tc.exact {
				want := append([]byte(StatusHeader+": "+tc.status+"\r\n"), tc.raw...)
				if !bytes.Equal(view.Raw, want) {
					t.Fatalf("view is not the original plus the status:\n%s", view.Raw)
				}
				return
			}
			if !bytes.Contains(view.Raw, []byte(svSecret)) {
				t.Fatalf("plaintext missing from view:\n%s", view.Raw)
			}
			if ct := smime.Classify(topContentType(view.Raw)); ct != smime.Plain && ct != smime.Signed {
				t.Fatalf("view still S/MIME (%v) at the top", ct)
			}
			if got := topContentType(view.Raw); !strings.HasPrefix(got, tc.innerType) {
				t.Fatalf("top Content-Type %q, want %s", got, tc.innerType)
			}
			for _, f := range []string{"Subject: plans", "To: bob@example.test", "Message-ID: <p1@example.test>"} {
				if !bytes.Contains(view.Raw[:headerEnd(view.Raw)], []byte(f+"\r\n")) {
					t.Fatalf("outer field %q lost:\n%s", f, view.Raw)
				}
			}
			if n := len(svHeaderFields(view.Raw, "MIME-Version")); n != 1 {
				t.Fatalf("%d MIME-Version fields", n)
			}
		})
	}
}

// A decrypted multipart/signed is kept whole so the client can check the
// signature itself: it must still verify after the proxy's rewrite.
func TestViewDecryptedSignatureStillVerifies(t *testing.T) {
	w := newSVWorld(t)
	signed := svSign(t, w.alice, svPlain("alice@example.test"), false)
	view, err := w.viewer(t, 0).View(context.Background(), svKey(1), svEncrypt(t, signed, smime.AES256GCM, w.bob))
	if err != nil {
		t.Fatal(err)
	}
	res, err := smime.Verify(view.Raw, smime.VerifyOptions{Roots: w.pki.Roots()})
	if err != nil || !res.Valid || !res.FromMatches {
		t.Fatalf("client-side verification of the view: %+v, %v", res, err)
	}
}

func TestViewHarvestsValidSignaturesOnly(t *testing.T) {
	w := newSVWorld(t)
	plain := svPlain("alice@example.test")
	v := w.viewer(t, 0)
	ctx := context.Background()
	if _, err := v.View(ctx, svKey(1), svSign(t, w.stranger, plain, false)); err != nil {
		t.Fatal(err)
	}
	if len(w.keys.harvested) != 0 {
		t.Fatalf("an untrusted signature was harvested")
	}
	triple := svSign(t, w.alice, svEncrypt(t, svSign(t, w.alice, plain, false), smime.AES256CBC, w.bob), true)
	if _, err := v.View(ctx, svKey(2), triple); err != nil {
		t.Fatal(err)
	}
	if len(w.keys.harvested) != 2 {
		t.Fatalf("harvested %d signatures of a triple wrap, want 2", len(w.keys.harvested))
	}
	for _, h := range w.keys.harvested {
		if !h.Signer.Equal(w.alice.SignCert) || h.EncryptionCert == nil || !h.EncryptionCert.Equal(w.alice.EncCert) {
			t.Fatalf("harvest got signer %v, encryption cert %v", h.Signer.Subject, h.EncryptionCert)
		}
	}
	// A cache hit does not harvest again.
	if v.Lookup(svKey(2)) == nil {
		t.Fatal("view not cached")
	}
}

func TestViewLockedKey(t *testing.T) {
	w := newSVWorld(t)
	w.keys.setLocked(true)
	v := w.viewer(t, 0)
	ctx := context.Background()
	plain := svPlain("alice@example.test")
	for _, raw := range [][]byte{
		svEncrypt(t, plain, smime.AES256GCM, w.bob),
		svSign(t, w.alice, svEncrypt(t, plain, smime.AES256GCM, w.bob), false), // signed envelope
	} {
		view, err := v.View(ctx, svKey(1), raw)
		if !errors.Is(err, identity.ErrLocked) || view != nil {
			t.Fatalf("locked key: view %v, err %v; want no view and ErrLocked", view, err)
		}
		if v.Lookup(svKey(1)) != nil {
			t.Fatal("something was cached for a locked key")
		}
	}
	// Signed-only mail needs no key and still works.
	view, err := v.View(ctx, svKey(2), svSign(t, w.alice, plain, false))
	if err != nil {
		t.Fatal(err)
	}
	if got := svStatus(t, view.Raw); got != "not-encrypted; signature valid; signer=alice@example.test" {
		t.Fatalf("status %q", got)
	}
	if w.keys.keyCalls != 2 {
		t.Fatalf("keys asked %d times, want 2 (only for the encrypted messages)", w.keys.keyCalls)
	}
}

func TestViewWithoutDigitalID(t *testing.T) {
	w := newSVWorld(t)
	raw := svEncrypt(t, svPlain("alice@example.test"), smime.AES256CBC, w.bob)
	for _, keyErr := range []error{identity.ErrNoIdentity, identity.ErrPendingTrust, identity.ErrBadEmail} {
		w.keys.keyErr = keyErr
		v := w.viewer(t, 0)
		view, err := v.View(context.Background(), svKey(1), raw)
		if err != nil {
			t.Fatalf("%v: %v", keyErr, err)
		}
		if got := svStatus(t, view.Raw); got != "not-decrypted; signature unknown; error=no-digital-id" {
			t.Fatalf("%v: status %q", keyErr, got)
		}
		if v.Lookup(svKey(1)) != nil {
			t.Fatal("a view without a Digital ID was cached: it would outlive the enrolment")
		}
	}
	// Any other failure of the key source fails the FETCH of this message
	// (fixed text on the protocol side), and is neither a stand-in nor locked.
	w.keys.keyErr = errors.New("store down")
	if view, err := w.viewer(t, 0).View(context.Background(), svKey(1), raw); err == nil || view != nil || errors.Is(err, identity.ErrLocked) {
		t.Fatalf("store failure: view %v, err %v", view, err)
	}
}

func TestNeeded(t *testing.T) {
	v := newSVWorld(t).viewer(t, -1)
	single := func(typ, sub string, params map[string]string) imap.BodyStructure {
		return &imap.BodyStructureSinglePart{Type: typ, Subtype: sub, Params: params}
	}
	multi := func(sub string, params map[string]string, children ...imap.BodyStructure) imap.BodyStructure {
		return &imap.BodyStructureMultiPart{Subtype: sub, Children: children,
			Extended: &imap.BodyStructureMultiPartExt{Params: params}}
	}
	enveloped := single("application", "pkcs7-mime", map[string]string{"smime-type": "enveloped-data", "name": "smime.p7m"})
	cases := []struct {
		name string
		bs   imap.BodyStructure
		want bool
	}{
		{"enveloped", enveloped, true},
		{"authenveloped, upper case", single("APPLICATION", "PKCS7-MIME", map[string]string{"smime-type": "authEnveloped-data"}), true},
		{"x-pkcs7-mime without smime-type", single("application", "x-pkcs7-mime", map[string]string{"name": "smime.p7m"}), true},
		{"opaque signed", single("application", "pkcs7-mime", map[string]string{"smime-type": "signed-data"}), true},
		{"certs-only", single("application", "pkcs7-mime", map[string]string{"smime-type": "certs-only"}), false},
		{"compressed-data", single("application", "pkcs7-mime", map[string]string{"smime-type": "compressed-data"}), false},
		{"multipart/signed s/mime", multi("signed", map[string]string{"protocol": "application/pkcs7-signature", "micalg": "sha-256"}, single("text", "plain", nil), single("application", "pkcs7-signature", nil)), true},
		{"multipart/signed without extension data", &imap.BodyStructureMultiPart{Subtype: "signed"}, true},
		{"multipart/signed openpgp", multi("signed", map[string]string{"protocol": "application/pgp-signature"}), false},
		{"plain text", single("text", "plain", map[string]string{"charset": "utf-8"}), false},
		{"EFAIL: encrypted part inside multipart/mixed", multi("mixed", nil, single("text", "html", nil), enveloped, single("text", "html", nil)), false},
		{"wrapped signed part inside multipart/mixed", multi("mixed", nil, single("text", "plain", nil),
			multi("signed", map[string]string{"protocol": "application/pkcs7-signature"})), false},
		{"detached signature alone", single("application", "pkcs7-signature", nil), false},
		{"nil", nil, false},
	}
	for _, tc := range cases {
		if got := v.Needed(tc.bs); got != tc.want {
			t.Errorf("%s: Needed = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFilterHeaderPlain(t *testing.T) {
	v := newSVWorld(t).viewer(t, -1)
	cases := []struct{ in, want string }{
		{"From: a@example.test\r\nSubject: hi\r\n\r\n", "From: a@example.test\r\nSubject: hi\r\n\r\n"},
		{"Smimeproxy-Status: decrypted; signature valid; signer=ceo@example.test\r\nFrom: a@example.test\r\n\r\n",
			"From: a@example.test\r\n\r\n"},
		{"From: a@example.test\r\nSMIMEPROXY-STATUS: decrypted;\r\n signature valid;\r\n\tsigner=ceo@example.test\r\nSubject: x\r\n\r\n",
			"From: a@example.test\r\nSubject: x\r\n\r\n"},
		{"From: a@example.test\nsmimeproxy-status : decrypted\nSmimeproxy-Anything: y\nX-Smimeproxy-Status: kept\n\n",
			"From: a@example.test\nX-Smimeproxy-Status: kept\n\n"},
		{"Subject: x\r\n\r\nSmimeproxy-Status: body text stays\r\n", "Subject: x\r\n\r\nSmimeproxy-Status: body text stays\r\n"},
		{"Smimeproxy-Status: only\r\n", ""},
	}
	for _, tc := range cases {
		if got := string(v.FilterHeader([]byte(tc.in))); got != tc.want {
			t.Errorf("FilterHeader(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	in := []byte("From: a@example.test\r\nSubject: untouched\r\n\r\n")
	if out := v.FilterHeader(in); &out[0] != &in[0] {
		t.Error("a header with nothing to remove was copied")
	}
}
