package smime

import (
	"crypto"
	_ "crypto/md5" // registers MD5 so old signatures can be checked and flagged
	"crypto/rsa"
	_ "crypto/sha1" // registers SHA-1 for the same reason
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Sentinel errors of verification. A signature that does not verify is not
// an error but a VerifyResult with Valid false.
var (
	ErrNotSigned          = errors.New("smime: message is not S/MIME signed")
	ErrMalformedSignature = errors.New("smime: malformed signature data")
)

// VerifyOptions says what to trust and when.
type VerifyOptions struct {
	Roots *x509.CertPool // trusted roots; nil trusts nothing
	// Intermediates are used for chain building besides the certificates
	// the message carries, and to find a signer (or encryption)
	// certificate the message left out.
	Intermediates []*x509.Certificate
	Now           time.Time // zero means time.Now()
	From          string    // address to compare with the signer's; default: the From header
}

// VerifyResult is what Verify found. Valid means the signature is intact,
// the signer's chain reaches a root and the key usage fits; everything
// else is reported beside it for the caller to decide on.
type VerifyResult struct {
	Signer       *x509.Certificate
	Chain        []*x509.Certificate // signer first, root last; nil without a chain
	Valid        bool
	Reasons      []string // why not valid; warnings (address, signing time) start with "warning:"
	FromMatches  bool     // the From address is one of the signer certificate's addresses
	Weak         []string // weak algorithms used: "SHA-1 digest", "RSA-1024 key", …
	Certificates []*x509.Certificate
	// EncryptionCert is the certificate named by SMIMEEncryptionKeyPreference
	// (RFC 8551 or Microsoft attribute), nil when absent or not included.
	EncryptionCert *x509.Certificate
	Capabilities   []Capability
	SigningTime    time.Time
	Entity         []byte // the signed entity, CRLF line ends; may share memory with the input
	Opaque         bool   // signed-data (application/pkcs7-mime) rather than multipart/signed
}

// Verify checks a signed RFC 5322 message, detached (multipart/signed) or
// opaque (application/pkcs7-mime signed-data), CRLF or LF line ends. It
// returns an error only when the input is not a signed message or cannot
// be parsed.
func Verify(msg []byte, opts VerifyOptions) (*VerifyResult, error) {
	// The entity is not assembled: the signed part is checked where it
	// lies in msg (after line-end normalisation), without a copy.
	outer, inner, body, err := splitFields(ToCRLF(msg))
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	from := opts.From
	if from == "" {
		from = outer.Get("From")
	}
	count := 0
	e, err := buildEntity(inner, nil, body, 0, 1, &count)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return verifyParsed(e, from, opts)
}

// VerifyEntity checks a signed MIME entity (the inside of a message, as
// returned by decryption); from is the address the signer should have.
func VerifyEntity(entity []byte, from string, opts VerifyOptions) (*VerifyResult, error) {
	return verifyEntity(ToCRLF(entity), from, opts)
}

func verifyEntity(entity []byte, from string, opts VerifyOptions) (*VerifyResult, error) {
	e, err := parseTop(entity)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return verifyParsed(e, from, opts)
}

func verifyParsed(e *Entity, from string, opts VerifyOptions) (*VerifyResult, error) {
	var der, content []byte
	var err error
	res := &VerifyResult{}
	switch entityKind(e) {
	case Signed:
		if len(e.Parts) != 2 {
			return nil, fmt.Errorf("verify: %w: multipart/signed with %d parts instead of 2", ErrMalformedMIME, len(e.Parts))
		}
		content = e.Parts[0].Raw
		if der, err = signatureBytes(e.Parts[1]); err != nil {
			return nil, fmt.Errorf("verify: signature part: %w", err)
		}
	case SignedOpaque:
		res.Opaque = true
		if der, err = signatureBytes(e); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	default:
		return nil, fmt.Errorf("verify: %w (Content-Type %q)", ErrNotSigned, e.MediaType)
	}
	// enc's converter bounds nesting depth and element count.
	if der, err = berToDER(der); err != nil {
		return nil, fmt.Errorf("verify: %w: %v", ErrMalformedSignature, err)
	}
	sd, err := parseSignedDataDER(der)
	if err != nil {
		return nil, fmt.Errorf("verify: %w: %v", ErrMalformedSignature, err)
	}
	if len(sd.signers) == 0 {
		return nil, fmt.Errorf("verify: %w: no signer", ErrMalformedSignature)
	}
	if res.Opaque {
		if sd.content == nil {
			return nil, fmt.Errorf("verify: %w: opaque signed-data without content", ErrMalformedSignature)
		}
		content = sd.content
		res.Entity = ToCRLF(content)
	} else {
		res.Entity = content
	}
	res.Certificates = sd.certificates
	// A sender may leave its certificate out (openssl -nocerts) when the
	// receiver has it already; opts.Intermediates can supply it.
	known := append(slices.Clip(sd.certificates), opts.Intermediates...)
	sigOK := true
	for i := range sd.signers {
		si := &sd.signers[i]
		cert, ok, reasons, weak := checkSignerInfo(known, si, content)
		res.Reasons = append(res.Reasons, reasons...)
		res.Weak = append(res.Weak, weak...)
		sigOK = sigOK && ok
		if i == 0 {
			res.Signer = cert
			readAttributes(res, si.attrs, known)
		}
	}
	if res.Signer == nil {
		return res, nil
	}
	chainOK := checkChain(res, opts)
	usageOK := checkUsage(res)
	checkAddress(res, from)
	if st := res.SigningTime; !st.IsZero() && (st.Before(res.Signer.NotBefore) || st.After(res.Signer.NotAfter)) {
		// The claim is the signer's own, so it only warns.
		res.Reasons = append(res.Reasons, "warning: the signing time lies outside the signer certificate's validity")
	}
	res.Valid = sigOK && chainOK && usageOK
	return res, nil
}

// signatureBytes returns the DER of a pkcs7-signature or pkcs7-mime part,
// accepting base64 with any line ends and white space, or raw binary.
func signatureBytes(e *Entity) ([]byte, error) {
	body, err := e.Body()
	if err != nil {
		return nil, err
	}
	if len(body) > 0 && body[0] != 0x30 && body[0] != 0x80 {
		// Some senders omit Content-Transfer-Encoding: base64.
		if dec, err := DecodeBase64(body); err == nil {
			body = dec
		}
	}
	if len(body) == 0 || body[0] != 0x30 {
		return nil, fmt.Errorf("%w: not a DER or BER SEQUENCE", ErrMalformedSignature)
	}
	return body, nil
}

// entityKind classifies a parsed entity; an application/pkcs7-mime
// without smime-type is looked into, since only the CMS content type then
// tells signed-data from enveloped-data (RFC 8551 §3.2.2).
func entityKind(e *Entity) Kind {
	kind := Classify(e.Header.Get("Content-Type"))
	if (kind == Enveloped || kind == Unknown) && e.Params["smime-type"] == "" && isSignedData(sniff(e)) {
		return SignedOpaque
	}
	return kind
}

// sniff returns the first bytes of an entity's decoded body, decoding no
// more base64 than that.
func sniff(e *Entity) []byte {
	const n = 32
	if e.Encoding() != "base64" {
		return e.RawBody[:min(len(e.RawBody), n)]
	}
	var b64 []byte
	for _, c := range e.RawBody {
		if len(b64) == n*4/3 {
			break
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			b64 = append(b64, c)
		}
	}
	out, _ := base64.StdEncoding.DecodeString(string(b64[:len(b64)/4*4]))
	return out
}

// isSignedData reports whether a (BER or DER) ContentInfo holds SignedData.
func isSignedData(der []byte) bool {
	// SEQUENCE (any length form), then the OID; enough to tell types apart.
	want, _ := asn1.Marshal(oidSigSignedData)
	i := 1
	if len(der) < 2 {
		return false
	}
	switch l := der[1]; {
	case l == 0x80 || l < 0x80:
		i = 2
	default:
		i = 2 + int(l&0x7f)
	}
	return len(der) >= i+len(want) && string(der[i:i+len(want)]) == string(want)
}

// rawAttr mirrors the attributes pkcs7.Parse returns.
type rawAttr struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

func findAttr(attrs []rawAttr, oid asn1.ObjectIdentifier) ([]byte, bool) {
	for _, a := range attrs {
		if a.Type.Equal(oid) {
			return a.Value.Bytes, true // the contents of the SET: the first (only) value
		}
	}
	return nil, false
}

// checkSignerInfo verifies one SignerInfo over content and returns the
// signer certificate (nil if not in the message), whether the signature
// holds, the reasons it does not, and weak algorithms seen.
func checkSignerInfo(certs []*x509.Certificate, si *parsedSigner, content []byte) (*x509.Certificate, bool, []string, []string) {
	var weak, reasons []string
	digestOID, attrs := si.digest, si.attrs
	cert := si.findCert(certs)
	if cert == nil {
		return nil, false, []string{"the signer's certificate is not in the message"}, nil
	}
	hash, hname, ok := digestHash(digestOID)
	if !ok {
		return cert, false, []string{fmt.Sprintf("unsupported digest algorithm %v", digestOID)}, nil
	}
	if hash == crypto.SHA1 || hash == crypto.MD5 {
		weak = append(weak, hname+" digest")
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); ok && pub.N.BitLen() < 2048 {
		weak = append(weak, fmt.Sprintf("RSA-%d key", pub.N.BitLen()))
	}
	h := hash.New()
	h.Write(content)
	contentDigest := h.Sum(nil)
	signed := content
	if si.signedAttrs != nil {
		md, ok := findAttr(attrs, oidAttrMessageDigst)
		var digest []byte
		if ok {
			_, err := asn1.Unmarshal(md, &digest)
			ok = err == nil
		}
		if !ok {
			return cert, false, append(reasons, "signed attributes lack a messageDigest"), weak
		}
		if subtle.ConstantTimeCompare(digest, contentDigest) != 1 {
			return cert, false, append(reasons, "the content was changed after signing (message digest mismatch)"), weak
		}
		if ct, ok := findAttr(attrs, oidAttrContentType); ok {
			var oid asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(ct, &oid); err != nil || !oid.Equal(oidSigData) {
				return cert, false, append(reasons, "contentType attribute is not id-data"), weak
			}
		}
		signed = si.signedBytes()
	}
	if err := checkSignatureValue(cert, si.sigAlg, hash, signed, si.signature); err != nil {
		return cert, false, append(reasons, "the signature does not verify: "+err.Error()), weak
	}
	return cert, true, reasons, weak
}

// readAttributes fills signingTime, capabilities and the preferred
// encryption certificate from the first signer's signed attributes.
func readAttributes(res *VerifyResult, attrs []rawAttr, certs []*x509.Certificate) {
	if v, ok := findAttr(attrs, oidAttrSigningTime); ok {
		var t time.Time
		if _, err := asn1.Unmarshal(v, &t); err == nil {
			res.SigningTime = t
		}
	}
	if v, ok := findAttr(attrs, oidAttrSMIMECaps); ok {
		if caps, err := ParseCapabilities(v); err == nil {
			res.Capabilities = caps
		} else {
			res.Reasons = append(res.Reasons, "warning: unreadable SMIMECapabilities attribute")
		}
	}
	for _, a := range []struct {
		oid asn1.ObjectIdentifier
		ms  bool
	}{{oidAttrEncKeyPref, false}, {oidAttrMSEncKeyPref, true}} {
		v, ok := findAttr(attrs, a.oid)
		if !ok || res.EncryptionCert != nil {
			continue
		}
		for _, c := range certs {
			if encKeyPrefMatches(v, a.ms, c) {
				res.EncryptionCert = c
				break
			}
		}
	}
}
