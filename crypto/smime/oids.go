package smime

import (
	"crypto"
	"encoding/asn1"
	"fmt"
	"strings"
)

// Object identifiers of the CMS content types and algorithms the envelope
// code reads and writes (RFC 5652, 5083, 5084, 3565, 3394, 4055, 5753).
var (
	oidContentData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEnvelopedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidAuthEnvelopedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23}
	oidEncAES128CBC         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidEncAES192CBC         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidEncAES256CBC         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidEncAES128GCM         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}
	oidEncAES256GCM         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	oidEncDES3CBC           = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	oidWrapAES128           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 5}
	oidWrapAES192           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 25}
	oidWrapAES256           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 45}
	oidWrapDES3             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 3, 6}
	oidKeyRSA               = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidKeyRSAOAEP           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidMGF1                 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidPSpecified           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 9}
	oidHashSHA1             = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidHashSHA224           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
	oidHashSHA256           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidHashSHA384           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidHashSHA512           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidKeyECPublicKey       = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDHStdSHA1KDF       = asn1.ObjectIdentifier{1, 3, 133, 16, 840, 63, 0, 2}
	oidECDHCofactorSHA1KDF  = asn1.ObjectIdentifier{1, 3, 133, 16, 840, 63, 0, 3}
	oidECDHStdSHA224KDF     = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 0}
	oidECDHStdSHA256KDF     = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 1}
	oidECDHStdSHA384KDF     = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 2}
	oidECDHStdSHA512KDF     = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 3}
	oidECDHCofactorSHA224KD = asn1.ObjectIdentifier{1, 3, 132, 1, 14, 0}
	oidECDHCofactorSHA256KD = asn1.ObjectIdentifier{1, 3, 132, 1, 14, 1}
	oidECDHCofactorSHA384KD = asn1.ObjectIdentifier{1, 3, 132, 1, 14, 2}
	oidECDHCofactorSHA512KD = asn1.ObjectIdentifier{1, 3, 132, 1, 14, 3}
)

// Cipher is a content-encryption algorithm. The zero value is the default,
// AES-256-CBC, the one every S/MIME client reads.
type Cipher int

// Content-encryption algorithms. AES128CBC, AES192CBC and DES3CBC are read
// but never written.
const (
	AES256CBC Cipher = iota
	AES128GCM
	AES256GCM
	AES128CBC
	AES192CBC
	DES3CBC
)

// cipherInfo describes a content cipher: its OID, key length, whether it
// is an AEAD (AuthEnvelopedData) and whether we encrypt with it.
type cipherInfo struct {
	name     string
	oid      asn1.ObjectIdentifier
	keyLen   int
	aead     bool
	outbound bool
}

func (c Cipher) info() (cipherInfo, bool) {
	switch c {
	case AES256CBC:
		return cipherInfo{"aes256-cbc", oidEncAES256CBC, 32, false, true}, true
	case AES128GCM:
		return cipherInfo{"aes128-gcm", oidEncAES128GCM, 16, true, true}, true
	case AES256GCM:
		return cipherInfo{"aes256-gcm", oidEncAES256GCM, 32, true, true}, true
	case AES128CBC:
		return cipherInfo{"aes128-cbc", oidEncAES128CBC, 16, false, false}, true
	case AES192CBC:
		return cipherInfo{"aes192-cbc", oidEncAES192CBC, 24, false, false}, true
	case DES3CBC:
		return cipherInfo{"des3-cbc", oidEncDES3CBC, 24, false, false}, true
	}
	return cipherInfo{}, false
}

// String gives the name used on the command line, e.g. "aes256-cbc".
func (c Cipher) String() string {
	if ci, ok := c.info(); ok {
		return ci.name
	}
	return fmt.Sprintf("Cipher(%d)", int(c))
}

// AEAD reports whether the cipher is authenticated (AES-GCM), which puts
// the message in an AuthEnvelopedData (RFC 5083) instead of an
// EnvelopedData.
func (c Cipher) AEAD() bool {
	ci, _ := c.info()
	return ci.aead
}

// OutboundCiphers lists the ciphers Encrypt accepts, default first.
func OutboundCiphers() []Cipher { return []Cipher{AES256CBC, AES128GCM, AES256GCM} }

// ParseCipher reads a cipher name as printed by String. Only ciphers we
// encrypt with are accepted.
func ParseCipher(name string) (Cipher, error) {
	for _, c := range OutboundCiphers() {
		if strings.EqualFold(name, c.String()) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: cipher %q (use aes256-cbc, aes128-gcm or aes256-gcm)", ErrUnsupportedAlgorithm, name)
}

// cipherByOID maps a contentEncryptionAlgorithm OID to a Cipher.
func cipherByOID(oid asn1.ObjectIdentifier) (Cipher, bool) {
	for c := AES256CBC; c <= DES3CBC; c++ {
		if ci, _ := c.info(); ci.oid.Equal(oid) {
			return c, true
		}
	}
	return 0, false
}

// hashByOID maps a digest OID to a crypto.Hash for OAEP and the X9.63 KDF.
func hashByOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case oid.Equal(oidHashSHA1):
		return crypto.SHA1, true
	case oid.Equal(oidHashSHA224):
		return crypto.SHA224, true
	case oid.Equal(oidHashSHA256):
		return crypto.SHA256, true
	case oid.Equal(oidHashSHA384):
		return crypto.SHA384, true
	case oid.Equal(oidHashSHA512):
		return crypto.SHA512, true
	}
	return 0, false
}

// ecdhSchemeHash maps a dhSinglePass key-agreement OID (RFC 5753 §7.1.4,
// SEC 1) to the KDF hash. For the NIST curves the cofactor is 1, so
// cofactor DH equals standard DH and both are accepted.
func ecdhSchemeHash(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case oid.Equal(oidECDHStdSHA1KDF), oid.Equal(oidECDHCofactorSHA1KDF):
		return crypto.SHA1, true
	case oid.Equal(oidECDHStdSHA224KDF), oid.Equal(oidECDHCofactorSHA224KD):
		return crypto.SHA224, true
	case oid.Equal(oidECDHStdSHA256KDF), oid.Equal(oidECDHCofactorSHA256KD):
		return crypto.SHA256, true
	case oid.Equal(oidECDHStdSHA384KDF), oid.Equal(oidECDHCofactorSHA384KD):
		return crypto.SHA384, true
	case oid.Equal(oidECDHStdSHA512KDF), oid.Equal(oidECDHCofactorSHA512KD):
		return crypto.SHA512, true
	}
	return 0, false
}

// wrapKeyLen maps an AES key-wrap OID (RFC 3565) to its KEK length.
func wrapKeyLen(oid asn1.ObjectIdentifier) (int, bool) {
	switch {
	case oid.Equal(oidWrapAES128):
		return 16, true
	case oid.Equal(oidWrapAES192):
		return 24, true
	case oid.Equal(oidWrapAES256):
		return 32, true
	case oid.Equal(oidWrapDES3): // RFC 3217, inbound only
		return 24, true
	}
	return 0, false
}

// wrapOIDFor picks the key-wrap algorithm sized to the content key, as
// RFC 5753 §7.2 recommends and OpenSSL does.
func wrapOIDFor(keyLen int) asn1.ObjectIdentifier {
	switch keyLen {
	case 16:
		return oidWrapAES128
	case 24:
		return oidWrapAES192
	}
	return oidWrapAES256
}

// appendOID appends the DER of oid (tag, length, contents), as
// asn1.Marshal writes it, without reflection or allocation: the envelope
// and signature writers lay out their framing with it on every message.
// oid must be valid (two or more arcs, the first 0..2) and short (under
// 128 content octets), as every OID of this package is.
func appendOID(b []byte, oid asn1.ObjectIdentifier) []byte {
	b = append(b, 0x06, byte(oidContentLen(oid)))
	b = appendBase128(b, oid[0]*40+oid[1])
	for _, arc := range oid[2:] {
		b = appendBase128(b, arc)
	}
	return b
}

// oidLen is the length of appendOID's output.
func oidLen(oid asn1.ObjectIdentifier) int { return 2 + oidContentLen(oid) }

func oidContentLen(oid asn1.ObjectIdentifier) int {
	n := base128Len(oid[0]*40 + oid[1])
	for _, arc := range oid[2:] {
		n += base128Len(arc)
	}
	return n
}

func base128Len(v int) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

func appendBase128(b []byte, v int) []byte {
	for i := base128Len(v) - 1; i > 0; i-- {
		b = append(b, byte(v>>(7*i))|0x80)
	}
	return append(b, byte(v&0x7f))
}
