package smime

import (
	"bytes"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"smimeproxy/internal/mailtest"
)

// fixedTime is the injected signing time: a whole second, inside the
// validity of the test certificates (issued an hour before the test runs).
var fixedTime = time.Now().UTC().Add(-time.Minute).Truncate(time.Second)

func signOpts(u *mailtest.User, opaque bool) SignOptions {
	return SignOptions{Cert: u.SignCert, Key: u.SignKey, Chain: u.Chain, EncryptionCert: u.EncCert,
		Opaque: opaque, Now: func() time.Time { return fixedTime }}
}

const (
	msgPlainLF = "From: Alice <alice@example.test>\nTo: bob@example.test\nSubject: hi\nDate: Wed, 4 Mar 2026 05:06:07 +0000\nMessage-ID: <1@example.test>\n\nHello\nworld\n"
	msg8bit    = "From: alice@example.test\r\nSubject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe, trailing space \r\n"
	msgNested  = "From: alice@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n" +
		"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n" +
		"--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nk\xc3\xa4se\r\n" +
		"--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>k\xc3\xa4se</p>\r\n--inner--\r\n" +
		"--outer\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\xff\xfe\r\n" +
		"--outer--\r\n"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	pki := mailtest.NewPKI(t)
	users := map[string]*mailtest.User{
		"rsa":  pki.User(t, "alice@example.test", mailtest.RSA),
		"p256": pki.User(t, "alice@example.test", mailtest.P256),
		"p384": pki.User(t, "alice@example.test", mailtest.P384),
	}
	msgs := map[string]string{"plain-lf": msgPlainLF, "8bit": msg8bit, "nested": msgNested}
	for uname, u := range users {
		for _, opaque := range []bool{false, true} {
			for mname, msg := range msgs {
				t.Run(uname+"/"+map[bool]string{false: "detached", true: "opaque"}[opaque]+"/"+mname, func(t *testing.T) {
					var out bytes.Buffer
					if err := Sign(&out, []byte(msg), signOpts(u, opaque)); err != nil {
						t.Fatal(err)
					}
					signed := out.Bytes()
					if bytes.Contains(bytes.ReplaceAll(signed, []byte("\r\n"), nil), []byte("\n")) {
						t.Fatal("output has bare LF")
					}
					outer, inner, _ := SplitMessage(signed)
					wantKind := map[bool]Kind{false: Signed, true: SignedOpaque}[opaque]
					if k := Classify(inner2ct(t, inner)); k != wantKind {
						t.Fatalf("Classify = %v, want %v", k, wantKind)
					}
					wantMicalg := map[string]string{"rsa": "sha-256", "p256": "sha-256", "p384": "sha-384"}[uname]
					if !opaque && !strings.Contains(inner2ct(t, inner), "micalg="+wantMicalg) {
						t.Errorf("Content-Type %q lacks micalg=%s", inner2ct(t, inner), wantMicalg)
					}
					origOuter, origEntity, _ := SplitMessage([]byte(msg))
					if len(outer) != len(origOuter) || outer.Get("Subject") != origOuter.Get("Subject") {
						t.Errorf("outer header changed: %v", outer)
					}
					res, err := Verify(signed, VerifyOptions{Roots: pki.Roots()})
					if err != nil {
						t.Fatal(err)
					}
					if !res.Valid || !res.FromMatches || len(res.Weak) != 0 {
						t.Fatalf("Valid=%v FromMatches=%v Weak=%v Reasons=%v", res.Valid, res.FromMatches, res.Weak, res.Reasons)
					}
					if len(res.Reasons) != 0 {
						t.Errorf("reasons on a good signature: %v", res.Reasons)
					}
					if res.Opaque != opaque || !res.Signer.Equal(u.SignCert) || !res.EncryptionCert.Equal(u.EncCert) {
						t.Errorf("Opaque=%v Signer=%v EncryptionCert=%v", res.Opaque, res.Signer.Subject, res.EncryptionCert)
					}
					if !res.SigningTime.Equal(fixedTime) {
						t.Errorf("SigningTime = %v, want %v", res.SigningTime, fixedTime)
					}
					if len(res.Chain) != 3 || !res.Chain[2].Equal(pki.Root) {
						t.Errorf("chain has %d certificates", len(res.Chain))
					}
					if !capsEqual(res.Capabilities, DefaultCapabilities()) || !SupportsGCM(res.Capabilities) || !SupportsOAEP(res.Capabilities) {
						t.Errorf("capabilities = %v", res.Capabilities)
					}
					want, _ := Canonicalize(origEntity)
					if !bytes.Equal(res.Entity, want) {
						t.Errorf("entity = %q, want %q", res.Entity, want)
					}
					if !is7bitTree(t, res.Entity) {
						t.Errorf("signed entity is not 7-bit clean: %q", res.Entity)
					}
				})
			}
		}
	}
}

func inner2ct(t *testing.T, entity []byte) string {
	e, err := ParseEntity(entity)
	if err != nil {
		t.Fatal(err)
	}
	return e.Header.Get("Content-Type")
}

func capsEqual(a, b []Capability) bool {
	return slices.EqualFunc(a, b, func(x, y Capability) bool { return x.OID.Equal(y.OID) && bytes.Equal(x.Params, y.Params) })
}

// is7bitTree checks every leaf of an entity is 7bit-clean or encoded.
func is7bitTree(t *testing.T, entity []byte) bool {
	e, err := ParseEntity(entity)
	if err != nil {
		t.Fatal(err)
	}
	var ok func(e *Entity) bool
	ok = func(e *Entity) bool {
		if e.IsMultipart() {
			for _, p := range e.Parts {
				if !ok(p) {
					return false
				}
			}
			return true
		}
		enc := e.Encoding()
		return enc == "base64" || enc == "quoted-printable" || (enc == "7bit" && is7bit(e.RawBody))
	}
	return ok(e)
}

func TestSignedAttributesEncoding(t *testing.T) {
	pki := mailtest.NewPKI(t)
	u := pki.User(t, "alice@example.test", mailtest.RSA)
	attrs, err := signedAttributes(make([]byte, 32), fixedTime, u.EncCert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(attrs, bytes.Compare) {
		t.Error("attributes not in DER SET OF order")
	}
	var seen []string
	for _, a := range attrs {
		var ra rawAttr
		if _, err := asn1.Unmarshal(a, &ra); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, ra.Type.String())
		if ra.Type.Equal(oidAttrEncKeyPref) && !encKeyPrefMatches(ra.Value.Bytes, false, u.EncCert) {
			t.Error("RFC 8551 SMIMEEncryptionKeyPreference does not name the encryption certificate")
		}
		if ra.Type.Equal(oidAttrMSEncKeyPref) && !encKeyPrefMatches(ra.Value.Bytes, true, u.EncCert) {
			t.Error("Microsoft encryption key preference does not name the encryption certificate")
		}
		if ra.Type.Equal(oidAttrEncKeyPref) && encKeyPrefMatches(ra.Value.Bytes, false, u.SignCert) {
			t.Error("key preference also matches the signing certificate")
		}
	}
	for _, want := range []string{"1.2.840.113549.1.9.3", "1.2.840.113549.1.9.4", "1.2.840.113549.1.9.5", "1.2.840.113549.1.9.15", "1.2.840.113549.1.9.16.2.11", "1.3.6.1.4.1.311.16.4"} {
		if !slices.Contains(seen, want) {
			t.Errorf("attribute %s missing; have %v", want, seen)
		}
	}
	noEnc, _ := signedAttributes(make([]byte, 32), fixedTime, nil)
	if len(noEnc) != 4 {
		t.Errorf("without encryption cert: %d attributes, want 4", len(noEnc))
	}
}

func TestSignRejectsBadSigner(t *testing.T) {
	pki := mailtest.NewPKI(t)
	alice := pki.User(t, "alice@example.test", mailtest.RSA)
	tests := []struct {
		name string
		opts SignOptions
	}{
		{"no key", SignOptions{Cert: alice.SignCert}},
		{"no cert", SignOptions{Key: alice.SignKey}},
		{"foreign key", SignOptions{Cert: alice.SignCert, Key: alice.EncKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Sign(&bytes.Buffer{}, []byte(msgPlainLF), tt.opts)
			if !errors.Is(err, ErrBadSigner) {
				t.Fatalf("err = %v, want ErrBadSigner", err)
			}
		})
	}
}

func signed(t *testing.T, u *mailtest.User, msg string, opaque bool) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Sign(&out, []byte(msg), signOpts(u, opaque)); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestVerifyDetectsTampering(t *testing.T) {
	pki := mailtest.NewPKI(t)
	u := pki.User(t, "alice@example.test", mailtest.RSA)
	detached := signed(t, u, msgPlainLF, false)
	opaque := signed(t, u, msgPlainLF, true)
	flipSigByte := func(m []byte) []byte {
		// Change one bit of the signature value, the last bytes of the DER.
		i := bytes.LastIndex(m, []byte("smime.p7")) // header of the signature part
		body := bytes.Index(m[i:], []byte("\r\n\r\n")) + i + 4
		end := bytes.Index(m[body:], []byte("\r\n\r\n"))
		if end < 0 {
			end = len(m) - body
		}
		der, err := DecodeBase64(m[body : body+end])
		if err != nil {
			t.Fatal(err)
		}
		der[len(der)-5] ^= 1
		var b bytes.Buffer
		writeBase64Lines(&b, der)
		out := slices.Concat(m[:body], b.Bytes(), m[body+end:])
		return out
	}
	tests := []struct {
		name    string
		in      []byte
		wantErr error // nil: must parse and be invalid
	}{
		{"body byte flipped", bytes.Replace(detached, []byte("Hello"), []byte("Jello"), 1), nil},
		{"signed header changed", bytes.Replace(detached, []byte("Content-Type: text/plain; charset=us-ascii"), []byte("Content-Type: text/html; charset=us-ascii"), 1), nil},
		{"signature value changed", flipSigByte(detached), nil},
		{"opaque signature value changed", flipSigByte(opaque), nil},
		{"signature truncated", truncateSig(t, detached), ErrMalformedSignature},
		{"signature garbled base64", bytes.Replace(detached, []byte("MII"), []byte("M!I"), 1), ErrMalformedMIME},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Verify(tt.in, VerifyOptions{Roots: pki.Roots()})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid || len(res.Reasons) == 0 {
				t.Fatalf("tampered message: Valid=%v Reasons=%v", res.Valid, res.Reasons)
			}
		})
	}
}

// truncateSig cuts the base64 of the signature part in half.
func truncateSig(t *testing.T, m []byte) []byte {
	i := bytes.LastIndex(m, []byte("filename=\"smime.p7s\"\r\n\r\n")) + len("filename=\"smime.p7s\"\r\n\r\n")
	end := bytes.Index(m[i:], []byte("\r\n\r\n")) + i
	b64 := bytes.ReplaceAll(m[i:end], []byte("\r\n"), nil)
	der, _ := base64.StdEncoding.DecodeString(string(b64))
	short := base64.StdEncoding.EncodeToString(der[:len(der)/2])
	return slices.Concat(m[:i], []byte(short), m[end:])
}

func TestVerifyTrustAndUsage(t *testing.T) {
	pki := mailtest.NewPKI(t)
	alice := pki.User(t, "alice@example.test", mailtest.RSA)
	tests := []struct {
		name       string
		user       *mailtest.User
		opts       VerifyOptions
		from       string
		wantValid  bool
		wantFrom   bool
		wantReason string
	}{
		{"wrong roots", alice, VerifyOptions{Roots: mailtest.OtherPKI(t).Roots()}, "", false, true, "not trusted"},
		{"no roots", alice, VerifyOptions{}, "", false, true, "no trusted roots"},
		{"expired at verification time", alice, VerifyOptions{Roots: pki.Roots(), Now: time.Now().Add(60 * 24 * time.Hour)}, "", false, true, "expired"},
		{"expired certificate", pki.User(t, "alice@example.test", mailtest.RSA, mailtest.Expired), VerifyOptions{Roots: pki.Roots()}, "", false, true, "not trusted"},
		{"From mismatch", alice, VerifyOptions{Roots: pki.Roots()}, "Mallory <mallory@example.test>", true, false, "not the signer's"},
		{"From override matches", alice, VerifyOptions{Roots: pki.Roots(), From: "ALICE@example.test"}, "mallory@example.test", true, true, ""},
		{"From display name in an unknown charset", alice, VerifyOptions{Roots: pki.Roots()}, "=?x-unknown?q?Al=E9ce?= <alice@example.test>", true, true, ""},
		{"no EKU is allowed", pki.User(t, "alice@example.test", mailtest.RSA, mailtest.NoEKU), VerifyOptions{Roots: pki.Roots()}, "", true, true, ""},
		{"serverAuth EKU", pki.User(t, "alice@example.test", mailtest.RSA, mailtest.WrongEKU), VerifyOptions{Roots: pki.Roots()}, "", false, true, "e-mail protection"},
		{"no address in certificate", pki.User(t, "alice@example.test", mailtest.P256, mailtest.NoEmail), VerifyOptions{Roots: pki.Roots()}, "", true, false, "names no e-mail address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := msgPlainLF
			if tt.from != "" {
				msg = strings.Replace(msg, "Alice <alice@example.test>", tt.from, 1)
			}
			res, err := Verify(signed(t, tt.user, msg, false), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != tt.wantValid || res.FromMatches != tt.wantFrom {
				t.Fatalf("Valid=%v FromMatches=%v, want %v %v; reasons %v", res.Valid, res.FromMatches, tt.wantValid, tt.wantFrom, res.Reasons)
			}
			joined := strings.Join(res.Reasons, "; ")
			if tt.wantReason == "" && joined != "" || !strings.Contains(joined, tt.wantReason) {
				t.Fatalf("reasons %q, want one containing %q", joined, tt.wantReason)
			}
		})
	}
}

func TestVerifyNotSigned(t *testing.T) {
	for _, msg := range []string{
		msgPlainLF,
		"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nMIIB",
		"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=x\r\n\r\n--x\r\n\r\na\r\n--x\r\n\r\nb\r\n--x--\r\n",
	} {
		if _, err := Verify([]byte(msg), VerifyOptions{}); !errors.Is(err, ErrNotSigned) {
			t.Errorf("%.40q: err = %v, want ErrNotSigned", msg, err)
		}
	}
}
