package smime

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"slices"
)

// AES Key Wrap (RFC 3394 §2.2.1, §2.2.2) with the default IV, as used for
// the content key in KeyAgreeRecipientInfo (RFC 5753, RFC 3565).

var keyWrapIV = [8]byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}

var errKeyWrap = errors.New("aes key wrap: integrity check failed or bad length")

// aesKeyWrap wraps key (a multiple of 8 bytes, at least 16) under kek.
func aesKeyWrap(kek, key []byte) ([]byte, error) {
	if len(key)%8 != 0 || len(key) < 16 {
		return nil, errKeyWrap
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(key) / 8
	out := make([]byte, 8+len(key))
	copy(out[8:], key)
	a := keyWrapIV
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], out[8*i:8*i+8])
			block.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(buf[:8])^t)
			copy(out[8*i:], buf[8:])
		}
	}
	copy(out[:8], a[:])
	return out, nil
}

// aesKeyUnwrap reverses aesKeyWrap and checks the integrity value.
func aesKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped)%8 != 0 || len(wrapped) < 24 {
		return nil, errKeyWrap
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(wrapped)/8 - 1
	out := make([]byte, len(wrapped)-8)
	copy(out, wrapped[8:])
	var a [8]byte
	copy(a[:], wrapped[:8])
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(buf[8:], out[8*(i-1):8*i])
			block.Decrypt(buf[:], buf[:])
			copy(a[:], buf[:8])
			copy(out[8*(i-1):], buf[8:])
		}
	}
	if subtle.ConstantTimeCompare(a[:], keyWrapIV[:]) != 1 {
		return nil, errKeyWrap
	}
	return out, nil
}

// des3KeyWrapIV is the fixed IV of the outer pass of RFC 3217 §3.1.
var des3KeyWrapIV = []byte{0x4a, 0xdd, 0xa2, 0x2c, 0x79, 0xe8, 0x21, 0x05}

// des3KeyUnwrap reverses the Triple-DES key wrap of RFC 3217 §3.2, which
// OpenSSL uses for a 3DES content key in ECDH key agreement. Only unwrap
// is needed: we never send 3DES.
func des3KeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) != 40 {
		return nil, errKeyWrap
	}
	block, err := des.NewTripleDESCipher(kek)
	if err != nil {
		return nil, err
	}
	temp3 := make([]byte, 40)
	cipher.NewCBCDecrypter(block, des3KeyWrapIV).CryptBlocks(temp3, wrapped)
	slices.Reverse(temp3)
	iv, temp1 := temp3[:8], temp3[8:]
	lcekpad := make([]byte, 32)
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(lcekpad, temp1)
	cek, icv := lcekpad[:24], lcekpad[24:]
	sum := sha1.Sum(cek)
	if subtle.ConstantTimeCompare(sum[:8], icv) != 1 {
		return nil, errKeyWrap
	}
	return cek, nil
}
