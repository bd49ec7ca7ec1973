package imap

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
)

func TestAppendTransformEncryptsToUser(t *testing.T) {
	w := newSVWorld(t)
	v := w.viewer(t, 0)
	ctx := context.Background()
	sent := []byte("From: bob@example.test\r\nTo: alice@example.test\r\nSubject: my words\r\n" +
		"Smimeproxy-Status: decrypted; signature valid; signer=ceo@example.test\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + svSecret + "\r\n")
	out, err := v.AppendTransform(ctx, "bob@example.test", "Sent", sent)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(svSecret)) || bytes.Contains(out, []byte("ceo@example.test")) {
		t.Fatalf("plaintext reaches the server:\n%s", out)
	}
	if k := smime.Classify(topContentType(out)); k != smime.AuthEnveloped {
		t.Fatalf("stored message is %v, want authenveloped", k)
	}
	if !bytes.Contains(out[:headerEnd(out)], []byte("Subject: my words\r\n")) {
		t.Fatal("outer fields not kept for the server's listing")
	}
	// Only bob's current key opens it.
	if _, err := smime.Decrypt(out, []smime.KeyPair{{Cert: w.bobOld.EncCert, Key: w.bobOld.EncKey}}); !errors.Is(err, smime.ErrNoMatchingRecipient) {
		t.Fatalf("old key: %v, want no matching recipient", err)
	}
	// Read back through the viewer: the original, with the proxy's status.
	view, err := v.View(ctx, svKey(1), out)
	if err != nil {
		t.Fatal(err)
	}
	if got := svStatus(t, view.Raw); got != "decrypted; signature absent" {
		t.Fatalf("read back status %q", got)
	}
	body := view.Raw[headerEnd(view.Raw):]
	if string(body) != svSecret+"\r\n" {
		t.Fatalf("read back body %q", body)
	}
}

func TestAppendTransformPassesSMIMEAndNoID(t *testing.T) {
	w := newSVWorld(t)
	v := w.viewer(t, 0)
	ctx := context.Background()
	plain := svPlain("bob@example.test")
	for name, raw := range map[string][]byte{
		"encrypted": svEncrypt(t, plain, smime.AES256CBC, w.alice, w.bob),
		"signed":    svSign(t, w.bob, plain, false),
		"opaque":    svSign(t, w.bob, plain, true),
	} {
		out, err := v.AppendTransform(ctx, "bob@example.test", "Sent", raw)
		if err != nil || !bytes.Equal(out, raw) {
			t.Errorf("%s: changed (%v)", name, err)
		}
	}
	w.keys.noID = true
	out, err := v.AppendTransform(ctx, "bob@example.test", "Drafts", plain)
	if err != nil || !bytes.Equal(out, plain) {
		t.Errorf("without a Digital ID: changed (%v)", err)
	}
}

func TestAppendTransformLocked(t *testing.T) {
	w := newSVWorld(t)
	w.keys.setLocked(true)
	out, err := w.viewer(t, 0).AppendTransform(context.Background(), "bob@example.test", "Drafts", svPlain("bob@example.test"))
	if !errors.Is(err, identity.ErrLocked) || out != nil {
		t.Fatalf("locked: %d bytes, err %v; want nothing and ErrLocked", len(out), err)
	}
	if strings.Contains(err.Error(), svSecret) {
		t.Fatal("message text in the error")
	}
}
