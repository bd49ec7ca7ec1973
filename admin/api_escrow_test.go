package admin

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/smime"
)

// TestEscrowExport: an administrator gets alice's escrowed encryption key
// as an envelope that opens only with the key-recovery key, to the key of
// her encryption certificate; the reply never holds the key itself.
func TestEscrowExport(t *testing.T) {
	h := newHarness(t)
	_, caDir := testCA(t)
	er := h.enroll(alice, aliceMail, "alice id password", true)

	r := h.do(call{method: "GET", path: "/api/v1/identities/bob@example.test/escrow", bearer: adminToken})
	if r.status != http.StatusNotFound || r.errCode() != "no_identity" {
		t.Fatalf("escrow of a mailbox without a Digital ID: %v", r)
	}
	r = h.do(call{method: "GET", path: "/api/v1/identities/alice@example.test/escrow", bearer: adminToken})
	if r.status != http.StatusOK {
		t.Fatalf("escrow: %v", r)
	}
	var esc EscrowReply
	r.decode(t, &esc)
	if esc.Email != alice || len(esc.Keys) != 1 || esc.RecoveryCertificate == nil ||
		esc.RecoveryCertificate.Serial != h.ca.EscrowCertificate().SerialNumber.Text(16) {
		t.Fatalf("reply %+v", esc)
	}
	k := esc.Keys[0]
	block, _ := pem.Decode([]byte(k.CertificatePEM))
	if block == nil {
		t.Fatal("no certificate PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Current || cert.SerialNumber.Text(16) != k.Certificate.Serial || k.Certificate.Serial != er.Identity.EncryptionCert.Serial ||
		!k.Certificate.NotAfter.Equal(cert.NotAfter) {
		t.Fatalf("key %+v does not describe alice's encryption certificate %s", k, er.Identity.EncryptionCert.Serial)
	}
	keyPEM, err := os.ReadFile(filepath.Join(caDir, ca.EscrowKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	rkey, err := ca.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := smime.DecryptDER(k.Envelope, []smime.KeyPair{{Cert: h.ca.EscrowCertificate(), Key: rkey}})
	if err != nil {
		t.Fatalf("the envelope does not open with the key-recovery key: %v", err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(dec.Entity)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
	want, _ := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if !bytes.Equal(pub, want) {
		t.Fatal("the escrowed key is not the encryption certificate's")
	}
	// The key itself, in any form, is not in the reply.
	keys, err := h.svc.DecryptionKeys(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(keys[0].Key)
	if bytes.Contains(r.body, der) || bytes.Contains(r.body, []byte(base64.StdEncoding.EncodeToString(der)[8:40])) {
		t.Fatal("the reply holds the private key")
	}
}
