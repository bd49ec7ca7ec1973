package smime

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha512" // SHA-384 and SHA-512 for ECDSA P-384 and P-521
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrBadSigner means the signing certificate and key cannot sign: one is
// missing, they do not belong together, or the key type is unsupported.
var ErrBadSigner = errors.New("smime: unusable signing certificate or key")

// SignOptions says who signs and how.
type SignOptions struct {
	Cert *x509.Certificate // signing certificate
	// Key is the private key of Cert. Only its Sign method is used
	// (PKCS#1 v1.5 for RSA, ECDSA), so keys held elsewhere plug in.
	Key crypto.Signer
	// Chain holds issuing CAs to include, nearest first.
	Chain []*x509.Certificate
	// EncryptionCert, when set, is included and named in the
	// SMIMEEncryptionKeyPreference attributes so replies are encrypted to it.
	EncryptionCert *x509.Certificate
	// Opaque produces application/pkcs7-mime signed-data instead of
	// multipart/signed.
	Opaque bool
	// Now gives the signingTime; nil means time.Now.
	Now func() time.Time
}

// Sign signs a whole RFC 5322 message (CRLF or LF line ends). The outer
// header fields (From, To, Subject, Date, Message-ID, …) stay outside;
// the MIME entity is canonicalised and signed, giving multipart/signed
// with a detached signature (RFC 8551 §3.5.3; SHA-256, or SHA-384/512
// for ECDSA P-384/P-521 keys), or with
// opts.Opaque application/pkcs7-mime; smime-type=signed-data (§3.5.2).
// The output has CRLF line ends. Unchanged parts of the message are
// hashed and written from msg itself, not copied. Nothing is written
// when signing fails.
func Sign(w io.Writer, msg []byte, opts SignOptions) error {
	outer, inner, body, err := splitFields(ToCRLF(msg))
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	s, err := newSignedEntity(inner, body, opts)
	if err != nil {
		return err
	}
	if err := ComposeContent(w, outer, s); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	return nil
}

// SignEntity signs a MIME entity and returns the signed entity: a
// multipart/signed whose first part is the canonicalised entity, or with
// opts.Opaque an application/pkcs7-mime entity. NewSignedEntity gives the
// same without assembling it in memory.
func SignEntity(entity []byte, opts SignOptions) ([]byte, error) {
	s, err := NewSignedEntity(entity, opts)
	if err != nil {
		return nil, err
	}
	b := bytes.NewBuffer(make([]byte, 0, s.Len()))
	s.WriteTo(b) // a bytes.Buffer does not fail
	return b.Bytes(), nil
}

// SignedEntity is a signed MIME entity, signed once and written any number
// of times (the SMTP proxy puts one signature into the copy of every
// envelope). It holds the canonical entity as slices of the entity it was
// made from, plus what canonicalisation re-encoded, and the signature:
// nothing of the message's size is copied.
type SignedEntity struct {
	head  []byte // multipart/signed: everything up to the content; opaque: the MIME header
	parts pieces // the canonical content
	tail  []byte // multipart/signed: the signature part and the close delimiter
	// Opaque signed-data is written as base64 of derHead, parts, derTail.
	opaque           bool
	derHead, derTail []byte
	n                int64
}

// NewSignedEntity canonicalises a MIME entity (header fields, empty line,
// body; CRLF or LF) and signs it: the digest and the one RSA or ECDSA
// signature are computed here, and every error but a write error is
// returned here. The entity must not change while the SignedEntity is in
// use.
func NewSignedEntity(entity []byte, opts SignOptions) (*SignedEntity, error) {
	entity = ToCRLF(entity)
	h, bodyStart, err := parseHeader(entity, MaxHeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return newSignedEntity(h, entity[bodyStart:], opts)
}

// newSignedEntity signs the entity with header h and body (CRLF).
func newSignedEntity(h Header, body []byte, opts SignOptions) (*SignedEntity, error) {
	alg, err := signerAlg(opts)
	if err != nil {
		return nil, err
	}
	count := 0
	canon, _, err := canonicalEntity(h, body, 0, &count)
	if err != nil {
		return nil, fmt.Errorf("sign: canonicalise: %w", err)
	}
	derHead, derTail, err := signedData(canon, opts, !opts.Opaque)
	if err != nil {
		return nil, err
	}
	s := &SignedEntity{parts: canon, opaque: opts.Opaque}
	if opts.Opaque {
		s.head = []byte("Content-Type: application/pkcs7-mime; smime-type=signed-data; name=\"smime.p7m\"\r\n" +
			"Content-Transfer-Encoding: base64\r\n" +
			"Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n")
		s.derHead, s.derTail = derHead, derTail
		s.n = int64(len(s.head)) + base64Len(int64(len(derHead)+canon.len()+len(derTail)))
		return s, nil
	}
	boundary, err := newBoundary()
	if err != nil {
		return nil, err
	}
	s.head = []byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=" + alg.micalg + ";\r\n" +
		"\tboundary=\"" + boundary + "\"\r\n\r\n" +
		"This is an S/MIME signed message\r\n\r\n" +
		"--" + boundary + "\r\n")
	tail := []byte("\r\n--" + boundary + "\r\n" +
		"Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n")
	tail = appendBase64Lines(tail, derHead)
	s.tail = append(tail, "\r\n--"+boundary+"--\r\n"...)
	s.n = int64(len(s.head) + canon.len() + len(s.tail))
	return s, nil
}

// Len returns the number of bytes WriteTo writes.
func (s *SignedEntity) Len() int64 { return s.n }

// WriteTo writes the signed entity (CRLF line ends), the same bytes every
// time. Errors are w's.
func (s *SignedEntity) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	if _, err := cw.Write(s.head); err != nil {
		return cw.n, err
	}
	if s.opaque {
		b := newBase64Writer(cw)
		b.Write(s.derHead)
		for _, p := range s.parts {
			b.Write(p)
		}
		b.Write(s.derTail)
		return cw.n, b.Close()
	}
	for _, p := range s.parts {
		if _, err := cw.Write(p); err != nil {
			return cw.n, err
		}
	}
	_, err := cw.Write(s.tail)
	return cw.n, err
}

// newBoundary returns a random boundary. It is not searched for in the
// content: the content is fixed before 96 random bits are drawn, so it
// cannot contain the boundary except by a 2^-96 accident.
func newBoundary() (string, error) {
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("sign: boundary: %w", err)
	}
	return "----=_smimeproxy_" + hex.EncodeToString(r[:]), nil
}

// SignedData returns a DER ContentInfo holding a SignedData (RFC 5652 §5)
// over content: the digest of signerAlg, one SignerInfo identified by issuer and serial
// number, the signed attributes of signedAttributes, and the certificates
// signer, encryption certificate and chain. detached leaves the content out.
func SignedData(content []byte, opts SignOptions, detached bool) ([]byte, error) {
	head, tail, err := signedData(pieces{content}, opts, detached)
	if err != nil || detached {
		return head, err
	}
	der := make([]byte, 0, len(head)+len(content)+len(tail))
	return append(append(append(der, head...), content...), tail...), nil
}

// signedData returns the DER of SignedData around content in two parts:
// head, then the content octets unless detached, then tail (nil when
// detached). All lengths are definite.
func signedData(content pieces, opts SignOptions, detached bool) (head, tail []byte, err error) {
	alg, err := signerAlg(opts)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	hc := alg.hash.New()
	for _, p := range content {
		hc.Write(p)
	}
	attrs, err := signedAttributes(hc.Sum(nil), now(), opts.EncryptionCert)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	// The signature covers the attributes DER-encoded as a SET OF
	// (RFC 5652 §5.4), not the [0] IMPLICIT form stored in the SignerInfo.
	toSign := cryptobyte.NewBuilder(nil)
	toSign.AddASN1(cbasn1.SET, func(s *cryptobyte.Builder) {
		for _, a := range attrs {
			s.AddBytes(a)
		}
	})
	setDER, err := toSign.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("sign: encode attributes: %w", err)
	}
	h := alg.hash.New()
	h.Write(setDER)
	sig, err := opts.Key.Sign(rand.Reader, h.Sum(nil), alg.hash)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: signing key: %w", err)
	}

	certs := [][]byte{opts.Cert.Raw}
	addCert := func(c *x509.Certificate) {
		for _, have := range certs {
			if bytes.Equal(have, c.Raw) {
				return
			}
		}
		certs = append(certs, c.Raw)
	}
	if opts.EncryptionCert != nil {
		addCert(opts.EncryptionCert)
	}
	for _, c := range opts.Chain {
		if c != nil {
			addCert(c)
		}
	}

	tag0 := cbasn1.Tag(0).ContextSpecific().Constructed()
	// Everything but the content is built here; the content stays where
	// it lies and goes between head and tail.
	var pre cryptobyte.Builder // version and digestAlgorithms
	pre.AddASN1Int64(1)
	pre.AddASN1(cbasn1.SET, func(s *cryptobyte.Builder) {
		s.AddASN1(cbasn1.SEQUENCE, func(a *cryptobyte.Builder) { a.AddASN1ObjectIdentifier(alg.digest) })
	})
	var post cryptobyte.Builder // certificates and signerInfos
	post.AddASN1(tag0, func(c *cryptobyte.Builder) {
		for _, raw := range certs {
			c.AddBytes(raw)
		}
	})
	post.AddASN1(cbasn1.SET, func(s *cryptobyte.Builder) {
		s.AddASN1(cbasn1.SEQUENCE, func(si *cryptobyte.Builder) {
			si.AddASN1Int64(1)
			si.AddASN1(cbasn1.SEQUENCE, func(ias *cryptobyte.Builder) {
				ias.AddBytes(opts.Cert.RawIssuer)
				ias.AddASN1BigInt(opts.Cert.SerialNumber)
			})
			si.AddASN1(cbasn1.SEQUENCE, func(a *cryptobyte.Builder) { a.AddASN1ObjectIdentifier(alg.digest) })
			si.AddASN1(tag0, func(s *cryptobyte.Builder) {
				for _, a := range attrs {
					s.AddBytes(a)
				}
			})
			si.AddASN1(cbasn1.SEQUENCE, func(a *cryptobyte.Builder) {
				a.AddASN1ObjectIdentifier(alg.sig)
				if alg.sig.Equal(oidSigRSA) {
					a.AddASN1NULL()
				}
			})
			si.AddASN1OctetString(sig)
		})
	})
	preDER, err := pre.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("sign: encode SignedData: %w", err)
	}
	postDER, err := post.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("sign: encode SignedData: %w", err)
	}
	// encapContentInfo: SEQUENCE { eContentType, [0] { OCTET STRING } }
	eciLen := oidLen(oidSigData)
	n := content.len()
	octLen := 1 + lengthSize(n) + n
	if !detached {
		eciLen += 1 + lengthSize(octLen) + octLen
	}
	sdLen := len(preDER) + 1 + lengthSize(eciLen) + eciLen + len(postDER)
	expLen := 1 + lengthSize(sdLen) + sdLen
	ciLen := oidLen(oidSigSignedData) + 1 + lengthSize(expLen) + expLen
	size := 1 + lengthSize(ciLen) + ciLen
	if !detached {
		size -= n + len(postDER)
	}
	head = make([]byte, 0, size)
	head = appendLength(append(head, 0x30), ciLen)
	head = appendOID(head, oidSigSignedData)
	head = appendLength(append(head, 0xa0), expLen)
	head = appendLength(append(head, 0x30), sdLen)
	head = append(head, preDER...)
	head = appendLength(append(head, 0x30), eciLen)
	head = appendOID(head, oidSigData)
	if detached {
		return append(head, postDER...), nil, nil
	}
	head = appendLength(append(head, 0xa0), octLen)
	head = appendLength(append(head, 0x04), n)
	return head, postDER, nil
}

// sigAlgs are the digest and signature algorithms for one signing key.
type sigAlgs struct {
	hash   crypto.Hash
	digest asn1.ObjectIdentifier // digestAlgorithm
	sig    asn1.ObjectIdentifier // signatureAlgorithm
	micalg string                // RFC 8551 §3.5.3.2
}

// signerAlg checks that opts can sign and picks the algorithms: SHA-256
// with rsaEncryption (PKCS#1 v1.5, as RFC 5754 §3.2 and OpenSSL use) for
// RSA; for ECDSA the hash that matches the curve (RFC 5753 §7.1.5:
// P-256/SHA-256, P-384/SHA-384, P-521/SHA-512), which gpgsm insists on.
func signerAlg(opts SignOptions) (sigAlgs, error) {
	if opts.Cert == nil || opts.Key == nil {
		return sigAlgs{}, fmt.Errorf("%w: a certificate and its private key are both needed", ErrBadSigner)
	}
	pub, ok := opts.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(opts.Cert.PublicKey) {
		return sigAlgs{}, fmt.Errorf("%w: the private key does not belong to the certificate %q", ErrBadSigner, opts.Cert.Subject.String())
	}
	switch k := opts.Cert.PublicKey.(type) {
	case *rsa.PublicKey:
		return sigAlgs{crypto.SHA256, oidSigSHA256, oidSigRSA, "sha-256"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 384:
			return sigAlgs{crypto.SHA384, oidSigSHA384, oidSigECDSA384, "sha-384"}, nil
		case 521:
			return sigAlgs{crypto.SHA512, oidSigSHA512, oidSigECDSA512, "sha-512"}, nil
		}
		return sigAlgs{crypto.SHA256, oidSigSHA256, oidSigECDSA256, "sha-256"}, nil
	}
	return sigAlgs{}, fmt.Errorf("%w: %T keys are not supported for S/MIME signing; use RSA or ECDSA", ErrBadSigner, opts.Cert.PublicKey)
}
