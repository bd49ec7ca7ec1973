package smime

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// AES-GCM in CMS (RFC 5084): GCMParameters carry a 12-byte nonce and the
// ICV length; the tag goes into AuthEnvelopedData.mac (RFC 5083), not into
// the ciphertext.
const (
	gcmNonceSize = 12
	gcmTagSize   = 16
)

// gcmAlgorithmID encodes AlgorithmIdentifier{aesNNN-GCM, GCMParameters}.
func gcmAlgorithmID(c Cipher, nonce []byte) []byte {
	ci, _ := c.info()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(ci.oid)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(nonce)
			b.AddASN1Int64(gcmTagSize)
		})
	})
	return b.BytesOrPanic()
}

// parseGCMParameters reads GCMParameters; aes-ICVlen defaults to 12.
func parseGCMParameters(params []byte) (nonce []byte, icvLen int, err error) {
	p := cryptobyte.String(params)
	var seq cryptobyte.String
	icvLen = 12
	if !p.ReadASN1(&seq, cbasn1.SEQUENCE) || !p.Empty() ||
		!seq.ReadASN1Bytes(&nonce, cbasn1.OCTET_STRING) ||
		(seq.PeekASN1Tag(cbasn1.INTEGER) && !seq.ReadASN1Integer(&icvLen)) || !seq.Empty() {
		return nil, 0, fmt.Errorf("%w: bad GCMParameters", ErrMalformed)
	}
	if len(nonce) != gcmNonceSize {
		return nil, 0, fmt.Errorf("%w: GCM nonce of %d bytes (only 12 is supported)", ErrUnsupportedAlgorithm, len(nonce))
	}
	if icvLen < 12 || icvLen > 16 {
		return nil, 0, fmt.Errorf("%w: GCM tag length %d", ErrUnsupportedAlgorithm, icvLen)
	}
	return nonce, icvLen, nil
}

// openGCM authenticates and decrypts. ct must have room for the tag right
// after it (cap(ct) >= len(ct)+len(mac)) when inPlace is set; the tag is
// copied there so that ciphertext||tag is contiguous for cipher.AEAD.
func openGCM(key, params, ct, mac []byte, inPlace bool) ([]byte, error) {
	nonce, icvLen, err := parseGCMParameters(params)
	if err != nil {
		return nil, err
	}
	if len(mac) != icvLen {
		return nil, fmt.Errorf("%w: mac of %d bytes, GCMParameters say %d", ErrMalformed, len(mac), icvLen)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrDecryptFailed
	}
	aead, err := cipher.NewGCMWithTagSize(block, icvLen)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, err)
	}
	var sealed []byte
	if inPlace && cap(ct)-len(ct) >= len(mac) {
		tag := append([]byte(nil), mac...) // mac may overlap the destination
		sealed = append(ct, tag...)
	} else {
		sealed = make([]byte, 0, len(ct)+len(mac))
		sealed = append(append(sealed, ct...), mac...)
	}
	plain, err := aead.Open(sealed[:0], nonce, sealed, nil)
	if err != nil {
		return nil, ErrDecryptFailed
	}
	return plain, nil
}

// sealGCM encrypts frame content in place and moves the tag into the mac
// field, which sits two bytes (OCTET STRING header) after the ciphertext.
func sealGCM(key, nonce []byte, f envelopeFrame) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	plain := f.buf[f.start:f.end]
	hdr := [2]byte{f.buf[f.end], f.buf[f.end+1]} // the mac's OCTET STRING header
	sealed := aead.Seal(plain[:0], nonce, plain, nil)
	if &sealed[0] != &f.buf[f.start] {
		return fmt.Errorf("smime: GCM seal did not stay in place")
	}
	copy(f.buf[f.end+2:], f.buf[f.end:f.end+gcmTagSize])
	f.buf[f.end], f.buf[f.end+1] = hdr[0], hdr[1]
	return nil
}
