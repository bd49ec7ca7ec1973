package smime

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"encoding/asn1"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// envelope is a parsed EnvelopedData (RFC 5652 §6.1) or AuthEnvelopedData
// (RFC 5083 §2.1). Slices point into the DER they were parsed from.
type envelope struct {
	auth       bool
	recipients []cryptobyte.String // each RecipientInfo element, tag included
	cipher     Cipher
	params     []byte // contentEncryptionAlgorithm parameters, whole element
	ciphertext []byte
	chunked    bool   // ciphertext is a constructed [0] still holding OCTET STRING chunks
	mac        []byte // AuthEnvelopedData only
}

var (
	tagExplicit0 = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagImplicit0 = cbasn1.Tag(0).ContextSpecific()
	tagExplicit1 = cbasn1.Tag(1).ContextSpecific().Constructed()
	tagExplicit2 = cbasn1.Tag(2).ContextSpecific().Constructed()
)

// parseEnvelope reads a ContentInfo holding an EnvelopedData or an
// AuthEnvelopedData. der must already be DER-framed (see berToDER).
func parseEnvelope(der []byte) (*envelope, error) {
	in := cryptobyte.String(der)
	var ci, body cryptobyte.String
	var ctype asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, fmt.Errorf("%w: ContentInfo is not one DER SEQUENCE", ErrMalformed)
	}
	if !ci.ReadASN1ObjectIdentifier(&ctype) {
		return nil, fmt.Errorf("%w: ContentInfo without contentType", ErrMalformed)
	}
	env := &envelope{}
	switch {
	case ctype.Equal(oidEnvelopedData):
	case ctype.Equal(oidAuthEnvelopedData):
		env.auth = true
	default:
		return nil, fmt.Errorf("%w: CMS content type %s", ErrNotEncrypted, ctype)
	}
	if !ci.ReadASN1(&body, tagExplicit0) || !ci.Empty() || !body.ReadASN1(&body, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("%w: missing enveloped content", ErrMalformed)
	}
	var version int
	if !body.ReadASN1Integer(&version) || version < 0 || version > 4 {
		return nil, fmt.Errorf("%w: bad envelope version", ErrMalformed)
	}
	// originatorInfo only carries certificates and CRLs for key agreement
	// with static originator keys, which we do not use.
	if !body.SkipOptionalASN1(tagExplicit0) {
		return nil, fmt.Errorf("%w: bad originatorInfo", ErrMalformed)
	}
	var set cryptobyte.String
	if !body.ReadASN1(&set, cbasn1.SET) || set.Empty() {
		return nil, fmt.Errorf("%w: no recipientInfos", ErrMalformed)
	}
	for !set.Empty() {
		var ri cryptobyte.String
		var tag cbasn1.Tag
		if !set.ReadAnyASN1Element(&ri, &tag) {
			return nil, fmt.Errorf("%w: bad RecipientInfo", ErrMalformed)
		}
		env.recipients = append(env.recipients, ri)
	}
	if err := env.parseContentInfo(&body); err != nil {
		return nil, err
	}
	if env.auth {
		// authAttrs would have to be covered by the tag as AAD; RFC 5084
		// senders (OpenSSL, Outlook) do not send them, so refuse rather
		// than silently ignore them.
		if body.PeekASN1Tag(tagExplicit1) {
			return nil, fmt.Errorf("%w: AuthEnvelopedData with authAttrs", ErrUnsupportedAlgorithm)
		}
		if !body.ReadASN1Bytes(&env.mac, cbasn1.OCTET_STRING) {
			return nil, fmt.Errorf("%w: AuthEnvelopedData without mac", ErrMalformed)
		}
		if !body.SkipOptionalASN1(tagExplicit2) {
			return nil, fmt.Errorf("%w: bad unauthAttrs", ErrMalformed)
		}
	} else if !body.SkipOptionalASN1(tagExplicit1) {
		return nil, fmt.Errorf("%w: bad unprotectedAttrs", ErrMalformed)
	}
	if !body.Empty() {
		return nil, fmt.Errorf("%w: trailing data in envelope", ErrMalformed)
	}
	return env, nil
}

// parseContentInfo reads EncryptedContentInfo (RFC 5652 §6.1).
func (env *envelope) parseContentInfo(body *cryptobyte.String) error {
	var eci, alg cryptobyte.String
	var ctype, algOID asn1.ObjectIdentifier
	if !body.ReadASN1(&eci, cbasn1.SEQUENCE) || !eci.ReadASN1ObjectIdentifier(&ctype) ||
		!eci.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&algOID) {
		return fmt.Errorf("%w: bad EncryptedContentInfo", ErrMalformed)
	}
	c, ok := cipherByOID(algOID)
	if !ok {
		return fmt.Errorf("%w: content encryption %s", ErrUnsupportedAlgorithm, algOID)
	}
	if c.AEAD() != env.auth {
		return fmt.Errorf("%w: content encryption %s in the wrong envelope type", ErrUnsupportedAlgorithm, c)
	}
	env.cipher, env.params = c, alg
	switch {
	case eci.PeekASN1Tag(tagImplicit0):
		var ct []byte
		if !eci.ReadASN1Bytes(&ct, tagImplicit0) {
			return fmt.Errorf("%w: bad encryptedContent", ErrMalformed)
		}
		env.ciphertext = ct
	case eci.PeekASN1Tag(tagExplicit0):
		// BER streaming form: [0] constructed around OCTET STRING chunks.
		var ct cryptobyte.String
		if !eci.ReadASN1(&ct, tagExplicit0) {
			return fmt.Errorf("%w: bad encryptedContent", ErrMalformed)
		}
		env.ciphertext, env.chunked = ct, true
	default:
		return fmt.Errorf("%w: encryptedContent absent (detached content is not supported)", ErrMalformed)
	}
	if !eci.Empty() {
		return fmt.Errorf("%w: trailing data in EncryptedContentInfo", ErrMalformed)
	}
	return nil
}

// joinChunks returns the concatenated contents of the OCTET STRING chunks in
// b. With inPlace the chunks are moved down inside b, which is safe because
// the write position never passes the read position.
func joinChunks(b []byte, inPlace bool) ([]byte, error) {
	s := cryptobyte.String(b)
	var out []byte
	if inPlace {
		out = b[:0]
	} else {
		out = make([]byte, 0, len(b))
	}
	for !s.Empty() {
		var chunk []byte
		if !s.ReadASN1Bytes(&chunk, cbasn1.OCTET_STRING) {
			return nil, fmt.Errorf("%w: encryptedContent chunk is not an OCTET STRING", ErrMalformed)
		}
		out = append(out, chunk...) // append within b's capacity is a memmove
	}
	return out, nil
}

// decryptCBC decrypts ciphertext with AES-CBC or 3DES-CBC and strips the
// PKCS#7 padding (RFC 5652 §6.3). With inPlace the ciphertext buffer is
// overwritten. Every failure after the key is known is ErrDecryptFailed,
// so that a wrong key and bad padding look the same.
func decryptCBC(c Cipher, key, params, ciphertext []byte, inPlace bool) ([]byte, error) {
	var iv []byte
	p := cryptobyte.String(params)
	if !p.ReadASN1Bytes(&iv, cbasn1.OCTET_STRING) || !p.Empty() {
		return nil, fmt.Errorf("%w: CBC parameters are not an IV", ErrMalformed)
	}
	var block cipher.Block
	var err error
	if c == DES3CBC {
		block, err = des.NewTripleDESCipher(key)
	} else {
		block, err = aes.NewCipher(key)
	}
	if err != nil {
		return nil, ErrDecryptFailed
	}
	bs := block.BlockSize()
	if len(iv) != bs {
		return nil, fmt.Errorf("%w: IV of %d bytes for %s", ErrMalformed, len(iv), c)
	}
	if len(ciphertext) == 0 || len(ciphertext)%bs != 0 {
		return nil, fmt.Errorf("%w: ciphertext length %d is not a multiple of the block size", ErrMalformed, len(ciphertext))
	}
	out := ciphertext
	if !inPlace {
		out = make([]byte, len(ciphertext))
	}
	decryptCBCBlocks(block, iv, out, ciphertext)
	return unpad(out, bs)
}

// unpad checks PKCS#7 padding without data-dependent branches on the
// padding bytes.
func unpad(b []byte, bs int) ([]byte, error) {
	n := int(b[len(b)-1])
	good := subtle.ConstantTimeLessOrEq(1, n) & subtle.ConstantTimeLessOrEq(n, bs)
	for i := 1; i <= bs; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, n)
		match := subtle.ConstantTimeByteEq(b[len(b)-i], byte(n))
		good &= subtle.ConstantTimeSelect(inPad, match, 1)
	}
	if good != 1 {
		return nil, ErrDecryptFailed
	}
	return b[:len(b)-n], nil
}

// envelopeFrame lays out the DER of a whole ContentInfo around content of a
// known size, so the content is copied once into a buffer of the final size
// and encrypted there.
type envelopeFrame struct {
	buf        []byte // complete message; the content area is filled by the caller
	start, end int    // content area
}

// buildEnvelopeFrame writes ContentInfo{envelopedData or authEnvelopedData}
// with the given recipientInfos (sorted here, DER SET OF), the encoded
// contentEncryptionAlgorithm and room for ctLen bytes of ciphertext, plus a
// macLen-byte mac for AuthEnvelopedData.
//
// fill, when not nil, appends the ctLen content bytes itself: the buffer
// is then allocated by that append, which copies the content without
// first zeroing the memory (about a third of the cost of laying out a
// large message).
func buildEnvelopeFrame(auth bool, version int, ris [][]byte, algID []byte, ctLen, macLen int, fill func([]byte) []byte) envelopeFrame {
	extra := ctLen + macTLVLen(auth, macLen)
	if fill != nil {
		extra = 0
	}
	b := envelopePrefix(auth, version, ris, algID, ctLen, macLen, extra)
	start := len(b)
	if fill != nil {
		b = fill(b)
	} else {
		b = b[:start+ctLen]
	}
	if auth {
		b = appendLength(append(b, 0x04), macLen)
		b = b[:len(b)+macLen]
	}
	return envelopeFrame{buf: b, start: start, end: start + ctLen}
}

// macTLVLen is the size of the mac OCTET STRING of an AuthEnvelopedData.
func macTLVLen(auth bool, macLen int) int {
	if !auth {
		return 0
	}
	return 1 + lengthSize(macLen) + macLen
}

// envelopePrefix returns the DER of the envelope up to the first octet
// of the ciphertext, all lengths definite, with room for extra more bytes.
func envelopePrefix(auth bool, version int, ris [][]byte, algID []byte, ctLen, macLen, extra int) []byte {
	slices.SortFunc(ris, bytes.Compare)
	risLen := 0
	for _, r := range ris {
		risLen += len(r)
	}
	ctype := oidEnvelopedData
	if auth {
		ctype = oidAuthEnvelopedData
	}

	eciLen := oidLen(oidContentData) + len(algID) + 1 + lengthSize(ctLen) + ctLen
	bodyLen := 3 + 1 + lengthSize(risLen) + risLen + 1 + lengthSize(eciLen) + eciLen + macTLVLen(auth, macLen)
	seqLen := 1 + lengthSize(bodyLen) + bodyLen
	ciLen := oidLen(ctype) + 1 + lengthSize(seqLen) + seqLen
	total := 1 + lengthSize(ciLen) + ciLen

	b := make([]byte, 0, total-ctLen-macTLVLen(auth, macLen)+extra)
	b = appendLength(append(b, 0x30), ciLen)
	b = appendOID(b, ctype)
	b = appendLength(append(b, 0xa0), seqLen)
	b = appendLength(append(b, 0x30), bodyLen)
	b = append(b, 0x02, 0x01, byte(version))
	b = appendLength(append(b, 0x31), risLen)
	for _, r := range ris {
		b = append(b, r...)
	}
	b = appendLength(append(b, 0x30), eciLen)
	b = appendOID(b, oidContentData)
	b = append(b, algID...)
	return appendLength(append(b, 0x80), ctLen)
}
