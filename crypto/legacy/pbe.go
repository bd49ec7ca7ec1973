package legacy

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"unicode/utf16"
)

// maxIterations bounds the work a file can ask for; real files use
// 1 to a few hundred thousand.
const maxIterations = 5_000_000

var (
	oidPBEWithSHAAnd3KeyTripleDESCBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3}
	oidPBEWithSHAAnd2KeyTripleDESCBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 4}
	oidPBEWithSHAAnd128BitRC2CBC     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 5}
	oidPBEWithSHAAnd40BitRC2CBC      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 6}
	oidPBES2                         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2                        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA1                  = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA224                = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACWithSHA256                = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA384                = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACWithSHA512                = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC                     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC                     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC                     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC                    = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	oidSHA1                          = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256                        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384                        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512                        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidSHA224                        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
)

// errBadPadding is what a wrong password usually produces when no MAC
// caught it first.
var errBadPadding = errors.New("bad padding after decryption")

// pkcs12PBEParams are the parameters of the PKCS#12 PBE schemes
// (RFC 7292 appendix C).
type pkcs12PBEParams struct {
	Salt       []byte
	Iterations int
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

// bmpPassword encodes a password as PKCS#12 wants it for its own KDF: a
// big-endian UTF-16 string with a two-byte zero terminator (RFC 7292
// appendix B.1).
func bmpPassword(password string) []byte {
	u := utf16.Encode([]rune(password))
	out := make([]byte, 0, 2*len(u)+2)
	for _, c := range u {
		out = append(out, byte(c>>8), byte(c))
	}
	return append(out, 0, 0)
}

// pkcs12KDF derives n bytes for purpose id (1 key, 2 IV, 3 MAC key) from
// a BMP password, as in RFC 7292 appendix B.2.
func pkcs12KDF(newHash func() hash.Hash, v, id int, password, salt []byte, iterations, n int) []byte {
	if iterations < 1 {
		iterations = 1
	}
	h := newHash()
	d := bytes.Repeat([]byte{byte(id)}, v)
	fill := func(s []byte) []byte {
		if len(s) == 0 {
			return nil
		}
		out := make([]byte, v*((len(s)+v-1)/v))
		for i := range out {
			out[i] = s[i%len(s)]
		}
		return out
	}
	i := append(fill(salt), fill(password)...)
	one := big.NewInt(1)
	mod := new(big.Int).Lsh(one, uint(v*8))
	var out []byte
	for len(out) < n {
		h.Reset()
		h.Write(d)
		h.Write(i)
		a := h.Sum(nil)
		for range iterations - 1 {
			h.Reset()
			h.Write(a)
			a = h.Sum(a[:0])
		}
		out = append(out, a...)
		if len(out) >= n {
			break
		}
		b := new(big.Int).SetBytes(fill(a)[:v])
		b.Add(b, one)
		for j := 0; j < len(i); j += v {
			ij := new(big.Int).SetBytes(i[j : j+v])
			ij.Add(ij, b).Mod(ij, mod)
			buf := ij.Bytes()
			clear(i[j : j+v])
			copy(i[j+v-len(buf):j+v], buf)
		}
	}
	return out[:n]
}

// decrypt decrypts data encrypted with a password-based scheme: the
// PKCS#12 PBE schemes (password as BMPString) or PBES2 (password as UTF-8,
// as OpenSSL and Windows use it).
func decrypt(alg pkix.AlgorithmIdentifier, data []byte, pw passphrase) ([]byte, error) {
	block, iv, err := pbeCipher(alg, pw)
	if err != nil {
		return nil, err
	}
	bs := block.BlockSize()
	if len(data) == 0 || len(data)%bs != 0 {
		return nil, fmt.Errorf("encrypted data of %d bytes is not a whole number of %d-byte blocks", len(data), bs)
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > bs {
		return nil, errBadPadding
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return nil, errBadPadding
		}
	}
	return out[:len(out)-pad], nil
}

func pbeCipher(alg pkix.AlgorithmIdentifier, pw passphrase) (cipher.Block, []byte, error) {
	switch {
	case alg.Algorithm.Equal(oidPBES2):
		return pbes2Cipher(alg.Parameters.FullBytes, pw)
	case alg.Algorithm.Equal(oidPBEWithSHAAnd3KeyTripleDESCBC),
		alg.Algorithm.Equal(oidPBEWithSHAAnd2KeyTripleDESCBC),
		alg.Algorithm.Equal(oidPBEWithSHAAnd128BitRC2CBC),
		alg.Algorithm.Equal(oidPBEWithSHAAnd40BitRC2CBC):
	default:
		return nil, nil, fmt.Errorf("encryption algorithm %v: %w", alg.Algorithm, ErrUnsupported)
	}
	var p pkcs12PBEParams
	if err := unmarshalAll(alg.Parameters.FullBytes, &p); err != nil {
		return nil, nil, fmt.Errorf("PBE parameters: %w", err)
	}
	if p.Iterations > pw.maxIterations {
		return nil, nil, fmt.Errorf("PBE iteration count %d: %w", p.Iterations, ErrUnsupported)
	}
	bmp := bmpPassword(pw.text)
	if pw.emptyBMP {
		bmp = nil
	}
	derive := func(id, n int) []byte { return pkcs12KDF(sha1.New, 64, id, bmp, p.Salt, p.Iterations, n) }
	iv := derive(2, 8)
	switch {
	case alg.Algorithm.Equal(oidPBEWithSHAAnd3KeyTripleDESCBC):
		b, err := des.NewTripleDESCipher(derive(1, 24))
		return b, iv, err
	case alg.Algorithm.Equal(oidPBEWithSHAAnd2KeyTripleDESCBC):
		k := derive(1, 16)
		b, err := des.NewTripleDESCipher(append(k, k[:8]...))
		return b, iv, err
	case alg.Algorithm.Equal(oidPBEWithSHAAnd128BitRC2CBC):
		b, err := newRC2(derive(1, 16), 128)
		return b, iv, err
	default:
		b, err := newRC2(derive(1, 5), 40)
		return b, iv, err
	}
}

// pbes2Cipher sets up PBES2 (RFC 8018 section 6.2) with PBKDF2.
func pbes2Cipher(params []byte, pw passphrase) (cipher.Block, []byte, error) {
	var p pbes2Params
	if err := unmarshalAll(params, &p); err != nil {
		return nil, nil, fmt.Errorf("PBES2 parameters: %w", err)
	}
	if !p.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, nil, fmt.Errorf("PBES2 key derivation %v: %w", p.KeyDerivationFunc.Algorithm, ErrUnsupported)
	}
	var kdf pbkdf2Params
	if err := unmarshalAll(p.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil {
		return nil, nil, fmt.Errorf("PBKDF2 parameters: %w", err)
	}
	if kdf.Iterations < 1 || kdf.Iterations > pw.maxIterations {
		return nil, nil, fmt.Errorf("PBKDF2 iteration count %d: %w", kdf.Iterations, ErrUnsupported)
	}
	prf, err := hmacHash(kdf.PRF.Algorithm)
	if err != nil {
		return nil, nil, fmt.Errorf("PBKDF2 PRF: %w", err)
	}
	var (
		keyLen int
		newBlk func([]byte) (cipher.Block, error)
	)
	switch enc := p.EncryptionScheme.Algorithm; {
	case enc.Equal(oidAES128CBC):
		keyLen, newBlk = 16, aes.NewCipher
	case enc.Equal(oidAES192CBC):
		keyLen, newBlk = 24, aes.NewCipher
	case enc.Equal(oidAES256CBC):
		keyLen, newBlk = 32, aes.NewCipher
	case enc.Equal(oidDESEDE3CBC):
		keyLen, newBlk = 24, des.NewTripleDESCipher
	default:
		return nil, nil, fmt.Errorf("PBES2 cipher %v: %w", enc, ErrUnsupported)
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != keyLen {
		return nil, nil, fmt.Errorf("PBKDF2 key length %d does not fit the cipher", kdf.KeyLength)
	}
	var iv []byte
	if err := unmarshalAll(p.EncryptionScheme.Parameters.FullBytes, &iv); err != nil {
		return nil, nil, fmt.Errorf("PBES2 IV: %w", err)
	}
	key, err := pbkdf2.Key(prf, pw.text, kdf.Salt, kdf.Iterations, keyLen)
	if err != nil {
		return nil, nil, fmt.Errorf("PBKDF2: %w", err)
	}
	block, err := newBlk(key)
	if err != nil {
		return nil, nil, err
	}
	if len(iv) != block.BlockSize() {
		return nil, nil, fmt.Errorf("PBES2 IV of %d bytes, want %d", len(iv), block.BlockSize())
	}
	return block, iv, nil
}

// hmacHash maps an HMAC algorithm identifier (RFC 8018 appendix B.1) to
// its hash; the absent identifier is PBKDF2's default, HMAC-SHA-1.
func hmacHash(oid asn1.ObjectIdentifier) (func() hash.Hash, error) {
	switch {
	case len(oid) == 0, oid.Equal(oidHMACWithSHA1):
		return sha1.New, nil
	case oid.Equal(oidHMACWithSHA224):
		return sha256.New224, nil
	case oid.Equal(oidHMACWithSHA256):
		return sha256.New, nil
	case oid.Equal(oidHMACWithSHA384):
		return sha512.New384, nil
	case oid.Equal(oidHMACWithSHA512):
		return sha512.New, nil
	}
	return nil, fmt.Errorf("HMAC algorithm %v: %w", oid, ErrUnsupported)
}

// unmarshalAll decodes DER into v and refuses trailing bytes.
func unmarshalAll(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("trailing data after ASN.1 value")
	}
	return nil
}
