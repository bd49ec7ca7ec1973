package smime

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Recipient is one addressee of an encrypted message. RSA certificates get
// key transport (PKCS#1 v1.5, or RSAES-OAEP with SHA-256 when OAEP is set);
// EC certificates (P-256, P-384, P-521) get ECDH key agreement and ignore
// OAEP.
type Recipient struct {
	Cert *x509.Certificate
	OAEP bool
}

// EncryptOptions tunes Encrypt and EncryptEntity. The zero value is
// AES-256-CBC with recipients named by issuer and serial number.
type EncryptOptions struct {
	Cipher Cipher // AES256CBC (default), AES128GCM or AES256GCM
	// SubjectKeyID names recipients by subjectKeyIdentifier instead of
	// issuerAndSerialNumber, for certificates that carry one.
	SubjectKeyID bool
}

var (
	// ErrNoRecipients: Encrypt was called without recipients.
	ErrNoRecipients = errors.New("smime: no recipients to encrypt to")
	// ErrUnusableRecipient: a recipient certificate's key usage or
	// extended key usage rules out S/MIME encryption (RFC 8550 §4.4).
	ErrUnusableRecipient = errors.New("smime: certificate is not for S/MIME encryption")
)

// OIDKeyRecoveryAgent is the Microsoft Key Recovery Agent extended key
// usage (1.3.6.1.4.1.311.21.6), carried by the certificate that private
// keys are escrowed to.
var OIDKeyRecoveryAgent = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 21, 6}

// checkRecipientUsage applies RFC 8550 §4.4.2 and §4.4.4: a keyUsage
// extension must allow keyEncipherment (RSA) or keyAgreement (EC), and an
// extendedKeyUsage extension must include emailProtection (or any).
//
// One addition: the Key Recovery Agent purpose also allows encryption.
// Escrow copies of private keys are CMS EnvelopedData addressed to such a
// certificate, which deliberately lacks emailProtection so that it is
// never chosen as a mail recipient; choosing recipients is the caller's
// business (identity filters on emailProtection), this check only says
// whether encrypting to the certificate is legitimate at all.
func checkRecipientUsage(cert *x509.Certificate, need x509.KeyUsage, needName string) error {
	if cert.KeyUsage != 0 && cert.KeyUsage&need == 0 {
		return fmt.Errorf("%w: %s has no %s key usage (a signing-only certificate?)", ErrUnusableRecipient, cert.Subject, needName)
	}
	if len(cert.ExtKeyUsage) == 0 && len(cert.UnknownExtKeyUsage) == 0 {
		return nil
	}
	for _, eku := range cert.ExtKeyUsage {
		if eku == x509.ExtKeyUsageEmailProtection || eku == x509.ExtKeyUsageAny {
			return nil
		}
	}
	if slices.ContainsFunc(cert.UnknownExtKeyUsage, OIDKeyRecoveryAgent.Equal) {
		return nil
	}
	return fmt.Errorf("%w: %s is not for email protection (extended key usage)", ErrUnusableRecipient, cert.Subject)
}

// EncryptEntity encrypts a MIME entity (or any content) to every recipient
// and returns the DER of a ContentInfo holding an EnvelopedData (CBC
// ciphers) or an AuthEnvelopedData (GCM, RFC 5083/5084). The result is
// built in one buffer of its final size and the content is encrypted in
// place there, so memory use is about one copy of the content. Writing
// the envelope as base64 to a writer is NewEnvelope's job, which holds no
// such copy.
func EncryptEntity(entity []byte, to []Recipient, opts EncryptOptions) ([]byte, error) {
	k, err := newContentKey(to, opts)
	if err != nil {
		return nil, err
	}
	defer clear(k.cek)
	plain := content{head: entity}
	if k.aead {
		return sealAuthEnveloped(opts.Cipher, k.cek, k.iv, k.ris, plain)
	}
	return sealEnveloped(opts.Cipher, k.cek, k.iv, k.ris, k.version, plain)
}

// contentKey is a fresh content-encryption key and the RecipientInfos
// that carry it to each recipient: everything about an envelope that can
// fail before content is encrypted.
type contentKey struct {
	cipher  Cipher
	aead    bool
	cek     []byte
	iv      []byte // the CBC IV or GCM nonce, drawn with cek in one read
	ris     [][]byte
	version int // of an EnvelopedData
}

func newContentKey(to []Recipient, opts EncryptOptions) (*contentKey, error) {
	if len(to) == 0 {
		return nil, ErrNoRecipients
	}
	ci, ok := opts.Cipher.info()
	if !ok || !ci.outbound {
		return nil, fmt.Errorf("%w: %s is not offered for encryption (use aes256-cbc, aes128-gcm or aes256-gcm)", ErrUnsupportedAlgorithm, opts.Cipher)
	}
	ivLen := aes.BlockSize
	if ci.aead {
		ivLen = gcmNonceSize
	}
	random := make([]byte, ci.keyLen+ivLen)
	if _, err := rand.Read(random); err != nil {
		return nil, err
	}
	k := &contentKey{cipher: opts.Cipher, aead: ci.aead, cek: random[:ci.keyLen:ci.keyLen], iv: random[ci.keyLen:], ris: make([][]byte, 0, len(to))}
	for i, r := range to {
		ri, v, err := recipientInfo(i, r, k.cek, opts.SubjectKeyID)
		if err != nil {
			clear(k.cek)
			return nil, err
		}
		if v != 0 {
			k.version = 2 // RFC 5652 §6.1: any non-v0 RecipientInfo
		}
		k.ris = append(k.ris, ri)
	}
	return k, nil
}

// recipientInfo encrypts cek to recipient number i and returns its
// RecipientInfo and version.
func recipientInfo(i int, r Recipient, cek []byte, ski bool) ([]byte, int, error) {
	if r.Cert == nil {
		return nil, 0, fmt.Errorf("recipient %d: no certificate", i)
	}
	switch pub := r.Cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if err := checkRecipientUsage(r.Cert, x509.KeyUsageKeyEncipherment, "keyEncipherment"); err != nil {
			return nil, 0, err
		}
		return buildKTRI(r, pub, cek, ski)
	case *ecdsa.PublicKey:
		if err := checkRecipientUsage(r.Cert, x509.KeyUsageKeyAgreement, "keyAgreement"); err != nil {
			return nil, 0, err
		}
		ecPub, err := ecdhPublicKey(r.Cert)
		if err != nil {
			return nil, 0, err
		}
		ri, err := buildKARI(r, ecPub, cek, ski)
		return ri, 3, err
	default:
		return nil, 0, fmt.Errorf("%w: recipient %s has a %T key (RSA or EC needed)", ErrUnsupportedAlgorithm, r.Cert.Subject, pub)
	}
}

// Encrypt encrypts a whole RFC 5322 message (CRLF or LF) to every
// recipient and writes the result to w: the outer header fields (From, To,
// Subject, Date, …) stay readable, the MIME entity (Content-* fields and
// body) goes into the envelope, and the new entity is application/pkcs7-mime
// with smime-type=enveloped-data, or authEnveloped-data for AES-GCM,
// base64 in 76-character lines. The envelope is streamed (see
// NewEnvelope); nothing is written when an error occurs before it.
func Encrypt(w io.Writer, msg []byte, to []Recipient, opts EncryptOptions) error {
	outer, c, err := splitForEnvelope(msg)
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	env, err := NewEnvelope(c, to, opts)
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	if err := ComposeContent(w, outer, env); err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	return nil
}

// SignEncrypt signs a whole RFC 5322 message (CRLF or LF) as Sign does and
// encrypts the signed entity as Encrypt does, writing the result to w:
// outer header fields, then application/pkcs7-mime around the signed
// entity (RFC 8551 §3.7: sign, then encrypt). The signed entity is never
// assembled and the envelope is streamed, so beside msg only small fixed
// buffers are held (AES-GCM: one copy of the signed entity). Nothing is
// written when an error occurs before the envelope.
func SignEncrypt(w io.Writer, msg []byte, sign SignOptions, to []Recipient, opts EncryptOptions) error {
	outer, inner, body, err := splitFields(ToCRLF(msg))
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	s, err := newSignedEntity(inner, body, sign)
	if err != nil {
		return err
	}
	env, err := NewEnvelope(s, to, opts)
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	if err := ComposeContent(w, outer, env); err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	return nil
}

// sealEnveloped returns the DER of an EnvelopedData around plain: laid out
// with the padded plaintext in place, then encrypted there.
func sealEnveloped(c Cipher, cek, iv []byte, ris [][]byte, version int, plain content) ([]byte, error) {
	ci, _ := c.info()
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	size := plain.size()
	padLen := aes.BlockSize - size%aes.BlockSize
	f := buildEnvelopeFrame(false, version, ris, cbcAlgorithmID(ci, iv), size+padLen, 0, func(b []byte) []byte {
		if plain.fixLF {
			b = slices.Grow(b, size+padLen)[:len(b)+size]
			plain.copyTo(b[len(b)-size:])
		} else {
			b = append(append(b, plain.head...), plain.body...)
		}
		for range padLen {
			b = append(b, byte(padLen)) // nearly always within the page rounding of the append above
		}
		return b
	})
	ct := f.buf[f.start:f.end]
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	return f.buf, nil
}

// cbcAlgorithmID encodes AlgorithmIdentifier{aesNNN-CBC, IV}.
func cbcAlgorithmID(ci cipherInfo, iv []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(ci.oid)
		b.AddASN1OctetString(iv)
	})
	return b.BytesOrPanic()
}

func sealAuthEnveloped(c Cipher, cek, nonce []byte, ris [][]byte, plain content) ([]byte, error) {
	// AuthEnvelopedData is version 0 whatever its RecipientInfos are (RFC 5083 §2.1).
	f := buildEnvelopeFrame(true, 0, ris, gcmAlgorithmID(c, nonce), plain.size(), gcmTagSize, nil)
	plain.copyTo(f.buf[f.start:f.end])
	if err := sealGCM(cek, nonce, f); err != nil {
		return nil, err
	}
	return f.buf, nil
}
