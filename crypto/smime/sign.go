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
// hashed and written from msg itself, not copied.
func Sign(w io.Writer, msg []byte, opts SignOptions) error {
	outer, inner, body, err := splitFields(ToCRLF(msg))
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	count := 0
	canon, _, err := canonicalEntity(inner, body, 0, &count)
	if err != nil {
		return fmt.Errorf("sign: canonicalise: %w", err)
	}
	ew := &errWriter{w: w}
	for _, f := range outer {
		ew.write(f.Raw)
	}
	ew.write([]byte("MIME-Version: 1.0\r\n"))
	if err := signTo(ew, canon, opts); err != nil {
		return err
	}
	if ew.err != nil {
		return fmt.Errorf("sign: write: %w", ew.err)
	}
	return nil
}

// SignEntity signs a MIME entity and returns the signed entity: a
// multipart/signed whose first part is the canonicalised entity, or with
// opts.Opaque an application/pkcs7-mime entity.
func SignEntity(entity []byte, opts SignOptions) ([]byte, error) {
	entity = ToCRLF(entity)
	h, bodyStart, err := parseHeader(entity, MaxHeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	count := 0
	canon, _, err := canonicalEntity(h, entity[bodyStart:], 0, &count)
	if err != nil {
		return nil, fmt.Errorf("sign: canonicalise: %w", err)
	}
	var b bytes.Buffer
	b.Grow(canon.len()*7/5 + 16<<10)
	if err := signTo(&b, canon, opts); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// signTo writes the signed entity for the canonical content canon.
func signTo(w io.Writer, canon pieces, opts SignOptions) error {
	der, err := signedData(canon, opts, !opts.Opaque)
	if err != nil {
		return err
	}
	ew := &errWriter{w: w}
	if opts.Opaque {
		ew.write([]byte("Content-Type: application/pkcs7-mime; smime-type=signed-data; name=\"smime.p7m\"\r\n" +
			"Content-Transfer-Encoding: base64\r\n" +
			"Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n"))
		writeBase64To(ew, der)
		return ew.err
	}
	boundary, err := newBoundary()
	if err != nil {
		return err
	}
	alg, _ := signerAlg(opts)
	ew.write([]byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=" + alg.micalg + ";\r\n" +
		"\tboundary=\"" + boundary + "\"\r\n\r\n" +
		"This is an S/MIME signed message\r\n\r\n" +
		"--" + boundary + "\r\n"))
	for _, p := range canon {
		ew.write(p)
	}
	ew.write([]byte("\r\n--" + boundary + "\r\n" +
		"Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n"))
	writeBase64To(ew, der)
	ew.write([]byte("\r\n--" + boundary + "--\r\n"))
	return ew.err
}

// errWriter keeps the first write error so a sequence of writes can be
// checked once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) write(p []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
	}
}

func (e *errWriter) Write(p []byte) (int, error) {
	e.write(p)
	if e.err != nil {
		return 0, e.err
	}
	return len(p), nil
}

// writeBase64To writes data as base64 lines to w in chunks, so the encoded
// form of a large opaque signature is never held whole.
func writeBase64To(w *errWriter, data []byte) {
	const chunk = 57 * 1024 // whole lines
	var buf bytes.Buffer
	for len(data) > 0 && w.err == nil {
		n := min(chunk, len(data))
		buf.Reset()
		writeBase64Lines(&buf, data[:n])
		w.write(buf.Bytes())
		data = data[n:]
	}
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
	return signedData(pieces{content}, opts, detached)
}

func signedData(content pieces, opts SignOptions, detached bool) ([]byte, error) {
	alg, err := signerAlg(opts)
	if err != nil {
		return nil, err
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
		return nil, fmt.Errorf("sign: %w", err)
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
		return nil, fmt.Errorf("sign: encode attributes: %w", err)
	}
	h := alg.hash.New()
	h.Write(setDER)
	sig, err := opts.Key.Sign(rand.Reader, h.Sum(nil), alg.hash)
	if err != nil {
		return nil, fmt.Errorf("sign: signing key: %w", err)
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
	size := len(sig) + 8192
	for _, c := range certs {
		size += len(c)
	}
	if !detached {
		size += content.len()
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, size))
	b.AddASN1(cbasn1.SEQUENCE, func(ci *cryptobyte.Builder) {
		ci.AddASN1ObjectIdentifier(oidSigSignedData)
		ci.AddASN1(tag0, func(e *cryptobyte.Builder) {
			e.AddASN1(cbasn1.SEQUENCE, func(sd *cryptobyte.Builder) {
				sd.AddASN1Int64(1)
				sd.AddASN1(cbasn1.SET, func(s *cryptobyte.Builder) {
					s.AddASN1(cbasn1.SEQUENCE, func(a *cryptobyte.Builder) { a.AddASN1ObjectIdentifier(alg.digest) })
				})
				sd.AddASN1(cbasn1.SEQUENCE, func(ec *cryptobyte.Builder) {
					ec.AddASN1ObjectIdentifier(oidSigData)
					if !detached {
						ec.AddASN1(tag0, func(x *cryptobyte.Builder) {
							x.AddASN1(cbasn1.OCTET_STRING, func(o *cryptobyte.Builder) {
								for _, p := range content {
									o.AddBytes(p)
								}
							})
						})
					}
				})
				sd.AddASN1(tag0, func(c *cryptobyte.Builder) {
					for _, raw := range certs {
						c.AddBytes(raw)
					}
				})
				sd.AddASN1(cbasn1.SET, func(s *cryptobyte.Builder) {
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
			})
		})
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("sign: encode SignedData: %w", err)
	}
	return der, nil
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
