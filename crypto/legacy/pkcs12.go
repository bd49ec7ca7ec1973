package legacy

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"unicode/utf16"
)

var (
	oidData                 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidKeyBag               = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 1}
	oidPKCS8ShroudedKeyBag  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidCertBag              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidSafeContentsBag      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 6}
	oidX509Certificate      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 22, 1}
	oidFriendlyName         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 20}
	oidPBMAC1               = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}
	maxSafeContentsNesting  = 4
	maxBagsInOnePKCS12File  = 1000
	errPKCS12TooManyBags    = errors.New("more than 1000 bags")
	errPKCS12NestedTooDeep  = errors.New("safe contents nested too deeply")
	errPKCS12NotPasswordPFX = fmt.Errorf("public-key protected PFX: %w", ErrUnsupported)
)

type pfxPDU struct {
	Version  int
	AuthSafe contentInfo
	MacData  macData `asn1:"optional"`
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

type macData struct {
	Mac        digestInfo
	MacSalt    []byte
	Iterations int `asn1:"optional,default:1"`
}

type digestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

type encryptedData struct {
	Version              int
	EncryptedContentInfo encryptedContentInfo
}

type encryptedContentInfo struct {
	ContentType                asn1.ObjectIdentifier
	ContentEncryptionAlgorithm pkix.AlgorithmIdentifier
	// EncryptedContent is [0] IMPLICIT OCTET STRING, which BER writers
	// may split into constructed chunks.
	EncryptedContent asn1.RawValue `asn1:"tag:0,optional"`
}

type safeBag struct {
	ID         asn1.ObjectIdentifier
	Value      asn1.RawValue     `asn1:"tag:0,explicit"`
	Attributes []pkcs12Attribute `asn1:"set,optional"`
}

type pkcs12Attribute struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"set"`
}

type certBag struct {
	ID   asn1.ObjectIdentifier
	Data []byte `asn1:"tag:0,explicit"`
}

type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

// isPFX reports whether der starts like a PFX, SEQUENCE { INTEGER 3, ...
// }, looking only at the first bytes so that a truncated file is still
// reported as a damaged PKCS#12 file rather than an unknown one.
func isPFX(der []byte) bool {
	if len(der) < 2 || der[0] != 0x30 {
		return false
	}
	n := 2
	if der[1]&0x80 != 0 {
		n += int(der[1] & 0x7f)
	}
	return len(der) >= n+3 && bytes.Equal(der[n:n+3], []byte{0x02, 0x01, 0x03})
}

// readPKCS12 decodes every bag of a password-protected PFX into b.
func readPKCS12(der []byte, pw passphrase, b *Bundle) error {
	var pfx pfxPDU
	if err := unmarshalBER(der, &pfx); err != nil {
		return fmt.Errorf("PKCS#12 structure: %w", err)
	}
	if pfx.Version != 3 {
		return fmt.Errorf("PKCS#12 version %d: %w", pfx.Version, ErrUnsupported)
	}
	if !pfx.AuthSafe.ContentType.Equal(oidData) {
		return errPKCS12NotPasswordPFX
	}
	var authSafe []byte
	if err := unmarshalAll(pfx.AuthSafe.Content.Bytes, &authSafe); err != nil {
		return fmt.Errorf("PKCS#12 authenticated safe: %w", err)
	}
	if len(pfx.MacData.Mac.Algorithm.Algorithm) > 0 {
		emptyBMP, err := verifyMAC(&pfx.MacData, authSafe, pw)
		if err != nil {
			return err
		}
		pw.emptyBMP = emptyBMP
	}
	var safes []contentInfo
	if err := unmarshalBER(authSafe, &safes); err != nil {
		return fmt.Errorf("PKCS#12 authenticated safe: %w", err)
	}
	bags := 0
	for i, ci := range safes {
		var contents []byte
		switch {
		case ci.ContentType.Equal(oidData):
			if err := unmarshalAll(ci.Content.Bytes, &contents); err != nil {
				return fmt.Errorf("PKCS#12 safe %d: %w", i, err)
			}
		case ci.ContentType.Equal(oidEncryptedData):
			var ed encryptedData
			if err := unmarshalAll(ci.Content.Bytes, &ed); err != nil {
				return fmt.Errorf("PKCS#12 encrypted safe %d: %w", i, err)
			}
			ciphertext, err := octets(ed.EncryptedContentInfo.EncryptedContent)
			if err != nil {
				return fmt.Errorf("PKCS#12 encrypted safe %d: %w", i, err)
			}
			plain, err := decrypt(ed.EncryptedContentInfo.ContentEncryptionAlgorithm, ciphertext, pw)
			if errors.Is(err, errBadPadding) {
				return fmt.Errorf("PKCS#12 safe %d: %w", i, ErrWrongPassword)
			} else if err != nil {
				return fmt.Errorf("PKCS#12 safe %d: %w", i, err)
			}
			contents = plain
		default:
			return fmt.Errorf("PKCS#12 safe %d of type %v: %w", i, ci.ContentType, ErrUnsupported)
		}
		if err := readSafeContents(contents, pw, b, 0, &bags); err != nil {
			if errors.Is(err, ErrWrongPassword) || pfx.MacData.Mac.Algorithm.Algorithm != nil {
				return fmt.Errorf("PKCS#12 safe %d: %w", i, err)
			}
			// Without a MAC, garbage after decryption means a wrong password.
			return fmt.Errorf("PKCS#12 safe %d: %w (%v)", i, ErrWrongPassword, err)
		}
	}
	return nil
}

func readSafeContents(der []byte, pw passphrase, b *Bundle, depth int, count *int) error {
	if depth > maxSafeContentsNesting {
		return errPKCS12NestedTooDeep
	}
	var bags []safeBag
	if err := unmarshalBER(der, &bags); err != nil {
		return fmt.Errorf("safe contents: %w", err)
	}
	for _, bag := range bags {
		if *count++; *count > maxBagsInOnePKCS12File {
			return errPKCS12TooManyBags
		}
		name := friendlyName(bag.Attributes)
		switch {
		case bag.ID.Equal(oidCertBag):
			var cb certBag
			if err := unmarshalAll(bag.Value.Bytes, &cb); err != nil {
				return fmt.Errorf("certificate bag: %w", err)
			}
			if !cb.ID.Equal(oidX509Certificate) {
				continue // SDSI certificates and the like: not ours
			}
			cert, err := x509.ParseCertificate(cb.Data)
			if err != nil {
				return fmt.Errorf("certificate bag: %w", err)
			}
			b.addCert(cert, name)
		case bag.ID.Equal(oidKeyBag):
			if err := b.addPKCS8(bag.Value.Bytes, name); err != nil {
				return fmt.Errorf("key bag: %w", err)
			}
		case bag.ID.Equal(oidPKCS8ShroudedKeyBag):
			plain, err := decryptPKCS8(bag.Value.Bytes, pw)
			if err != nil {
				return fmt.Errorf("shrouded key bag: %w", err)
			}
			if err := b.addPKCS8(plain, name); err != nil {
				return fmt.Errorf("shrouded key bag: %w", ErrWrongPassword)
			}
		case bag.ID.Equal(oidSafeContentsBag):
			if err := readSafeContents(bag.Value.Bytes, pw, b, depth+1, count); err != nil {
				return err
			}
		}
		// CRL and secret bags carry nothing a Digital ID needs.
	}
	return nil
}

// octets returns the bytes of an implicitly tagged OCTET STRING, primitive
// or (BER) made of OCTET STRING chunks.
func octets(v asn1.RawValue) ([]byte, error) {
	if !v.IsCompound {
		return v.Bytes, nil
	}
	var out []byte
	for rest := v.Bytes; len(rest) > 0; {
		var chunk []byte
		var err error
		if rest, err = asn1.Unmarshal(rest, &chunk); err != nil {
			return nil, fmt.Errorf("encrypted content: %w", err)
		}
		out = append(out, chunk...)
	}
	return out, nil
}

// decryptPKCS8 decrypts an EncryptedPrivateKeyInfo (RFC 5958 section 3).
func decryptPKCS8(der []byte, pw passphrase) ([]byte, error) {
	var epki encryptedPrivateKeyInfo
	if err := unmarshalAll(der, &epki); err != nil {
		return nil, fmt.Errorf("encrypted private key: %w", err)
	}
	plain, err := decrypt(epki.Algorithm, epki.EncryptedData, pw)
	if errors.Is(err, errBadPadding) {
		return nil, ErrWrongPassword
	}
	return plain, err
}

func friendlyName(attrs []pkcs12Attribute) string {
	for _, a := range attrs {
		if !a.ID.Equal(oidFriendlyName) {
			continue
		}
		var raw asn1.RawValue
		if _, err := asn1.Unmarshal(a.Value.Bytes, &raw); err != nil || raw.Tag != 30 || len(raw.Bytes)%2 != 0 {
			return ""
		}
		u := make([]uint16, len(raw.Bytes)/2)
		for i := range u {
			u[i] = uint16(raw.Bytes[2*i])<<8 | uint16(raw.Bytes[2*i+1])
		}
		return string(utf16.Decode(u))
	}
	return ""
}

// verifyPBMAC1 checks a PBMAC1 MAC (RFC 9579): PBKDF2 over the UTF-8
// password with the salt and key length in the algorithm parameters (the
// MacData salt and iteration fields are ignored), then HMAC.
func verifyPBMAC1(md *macData, content []byte, pw passphrase) error {
	var p struct {
		KDF pkix.AlgorithmIdentifier
		MAC pkix.AlgorithmIdentifier
	}
	if err := unmarshalAll(md.Mac.Algorithm.Parameters.FullBytes, &p); err != nil {
		return fmt.Errorf("PKCS#12 PBMAC1 parameters: %w", err)
	}
	if !p.KDF.Algorithm.Equal(oidPBKDF2) {
		return fmt.Errorf("PKCS#12 PBMAC1 key derivation %v: %w", p.KDF.Algorithm, ErrUnsupported)
	}
	var kdf pbkdf2Params
	if err := unmarshalAll(p.KDF.Parameters.FullBytes, &kdf); err != nil {
		return fmt.Errorf("PKCS#12 PBMAC1 PBKDF2 parameters: %w", err)
	}
	if kdf.Iterations < 1 || kdf.Iterations > pw.maxIterations {
		return fmt.Errorf("PKCS#12 PBMAC1 iteration count %d: %w", kdf.Iterations, ErrUnsupported)
	}
	// RFC 9579 requires the key length; a short one would let a forged
	// MAC through with little work.
	if kdf.KeyLength < 20 || kdf.KeyLength > 64 {
		return fmt.Errorf("PKCS#12 PBMAC1 key length %d is outside 20..64 bytes", kdf.KeyLength)
	}
	prf, err := hmacHash(kdf.PRF.Algorithm)
	if err != nil {
		return fmt.Errorf("PKCS#12 PBMAC1 PRF: %w", err)
	}
	if len(p.MAC.Algorithm) == 0 {
		return errors.New("PKCS#12 PBMAC1 names no MAC algorithm")
	}
	macHash, err := hmacHash(p.MAC.Algorithm)
	if err != nil {
		return fmt.Errorf("PKCS#12 PBMAC1 MAC: %w", err)
	}
	key, err := pbkdf2.Key(prf, pw.text, kdf.Salt, kdf.Iterations, kdf.KeyLength)
	if err != nil {
		return fmt.Errorf("PKCS#12 PBMAC1 PBKDF2: %w", err)
	}
	mac := hmac.New(macHash, key)
	mac.Write(content)
	if !hmac.Equal(mac.Sum(nil), md.Mac.Digest) {
		return ErrWrongPassword
	}
	return nil
}

// verifyMAC checks the PFX's HMAC (RFC 7292 section 5.2 and appendix B),
// which is what tells a wrong password apart from a damaged file.
func verifyMAC(md *macData, content []byte, pw passphrase) (emptyBMP bool, err error) {
	var (
		newHash func() hash.Hash
		v       = 64
	)
	switch a := md.Mac.Algorithm.Algorithm; {
	case a.Equal(oidSHA1):
		newHash = sha1.New
	case a.Equal(oidSHA224):
		newHash = sha256.New224
	case a.Equal(oidSHA256):
		newHash = sha256.New
	case a.Equal(oidSHA384):
		newHash, v = sha512.New384, 128
	case a.Equal(oidSHA512):
		newHash, v = sha512.New, 128
	case a.Equal(oidPBMAC1):
		return false, verifyPBMAC1(md, content, pw)
	default:
		return false, fmt.Errorf("PKCS#12 MAC digest %v: %w", a, ErrUnsupported)
	}
	if md.Iterations > pw.maxIterations {
		return false, fmt.Errorf("PKCS#12 MAC iteration count %d: %w", md.Iterations, ErrUnsupported)
	}
	candidates := [][]byte{bmpPassword(pw.text)}
	if pw.text == "" {
		// Some writers use an empty byte string rather than an empty
		// BMPString with its terminator for the empty password.
		candidates = append(candidates, nil)
	}
	for _, cand := range candidates {
		key := pkcs12KDF(newHash, v, 3, cand, md.MacSalt, md.Iterations, newHash().Size())
		mac := hmac.New(newHash, key)
		mac.Write(content)
		if hmac.Equal(mac.Sum(nil), md.Mac.Digest) {
			return cand == nil, nil
		}
	}
	return false, ErrWrongPassword
}
