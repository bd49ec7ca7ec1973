package e2e

import (
	"bytes"
	"testing"
)

// TestOutlookOpaqueSigned3DES reads the committed Outlook-style sample
// (testdata/README.md): opaque-signed inside 3DES enveloped-data, BER with
// indefinite lengths, old application/x-pkcs7-mime types, made by OpenSSL.
func TestOutlookOpaqueSigned3DES(t *testing.T) {
	const td = "../testdata/"
	inner := mustCLI(t, nil, "smime", "decrypt", "-cert", td+"outlook-test-recipient.crt",
		"-key", td+"outlook-test-recipient.key", "-in", td+"outlook-opaque-signed-3des.eml")
	if !bytes.Contains(bytes.ToLower(inner), []byte("signed-data")) {
		t.Errorf("decrypted entity is not the opaque signed-data:\n%.400s", inner)
	}
	r := cli(t, inner, "smime", "verify", "-roots", td+"outlook-test-ca.pem")
	if r.code != 0 {
		t.Fatalf("smime verify of the decrypted sample: %s", r)
	}
	for _, want := range []string{
		"multipart/alternative",
		"Hello from an Outlook-style client. Gr=FC=DFe!",
		"<html><body><p>Hello from an Outlook-style client. Gr=FC=DFe!</p></body></html>",
	} {
		wantContent(t, "decrypt+verify of the Outlook sample", r.stdout, want)
	}
	if !bytes.Contains(r.stderr, []byte("outlook-sender@example.test")) {
		t.Errorf("smime verify does not name the signer outlook-sender@example.test: %s", r.stderr)
	}

	// The wrong key must not open it, and must say why.
	w := getWorld(t)
	r = cli(t, nil, "smime", "decrypt", "-cert", w.alice.F.EncCert, "-key", w.alice.F.EncKey,
		"-in", td+"outlook-opaque-signed-3des.eml")
	if r.code != 1 || !saysNotRecipient(r.stderr) {
		t.Errorf("decrypt with a key that is not a recipient: %s; want exit 1 naming the recipient problem", r)
	}
}
