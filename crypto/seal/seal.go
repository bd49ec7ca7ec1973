package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/crypto/argon2"
)

// MasterKeySize is the size of a Digital ID's master key.
const MasterKeySize = 32

// ErrWrongPassword reports a password that does not open a wrapped master
// key. It is told apart from a corrupt record by a check value derived with
// the key-encryption key.
var ErrWrongPassword = errors.New("seal: wrong password")

// ErrWiped reports use of a master key after Wipe.
var ErrWiped = errors.New("seal: master key was wiped")

// MasterKey is a Digital ID's random AES-256 key that seals its private
// keys. Print it and you get "***"; Wipe zeroes it.
type MasterKey struct {
	k     [MasterKeySize]byte
	wiped bool
}

// NewMasterKey draws a fresh random master key.
func NewMasterKey() (*MasterKey, error) {
	mk := &MasterKey{}
	if _, err := rand.Read(mk.k[:]); err != nil {
		return nil, fmt.Errorf("seal: draw master key: %w", err)
	}
	return mk, nil
}

// MasterKeyFromBytes copies a raw 32-byte key (e.g. from an unlock cache);
// the caller keeps ownership of b and should wipe it.
func MasterKeyFromBytes(b []byte) (*MasterKey, error) {
	if len(b) != MasterKeySize {
		return nil, fmt.Errorf("seal: master key must be %d bytes, got %d", MasterKeySize, len(b))
	}
	mk := &MasterKey{}
	copy(mk.k[:], b)
	return mk, nil
}

// Bytes returns a copy of the raw key, for a cache that holds it; the caller
// must wipe the copy when done.
func (mk *MasterKey) Bytes() []byte {
	b := make([]byte, MasterKeySize)
	copy(b, mk.k[:])
	return b
}

// Wipe zeroes the key; later use fails with ErrWiped.
func (mk *MasterKey) Wipe() {
	if mk == nil {
		return
	}
	clear(mk.k[:])
	mk.wiped = true
}

// String hides the key.
func (*MasterKey) String() string { return "***" }

// GoString hides the key from %#v.
func (*MasterKey) GoString() string { return "seal.MasterKey(***)" }

// Format hides the key from every fmt verb.
func (*MasterKey) Format(f fmt.State, _ rune) { io.WriteString(f, "seal.MasterKey(***)") }

// LogValue hides the key from log/slog.
func (*MasterKey) LogValue() slog.Value { return slog.StringValue("***") }

func (mk *MasterKey) aead() (cipher.AEAD, error) {
	if mk == nil || mk.wiped {
		return nil, ErrWiped
	}
	return newGCM(mk.k[:])
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return cipher.NewGCM(block)
}

// derive runs Argon2id and splits its output into the key-encryption key
// and the password check value.
func derive(password Secret, salt []byte, p Params) (kek, check []byte) {
	out := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, 64)
	m := hmac.New(sha256.New, out[32:])
	m.Write([]byte("smimeproxy seal password check v1"))
	check = m.Sum(nil)[:checkSize]
	kek = out[:32:32]
	clear(out[32:])
	return kek, check
}

// WrapMasterKey seals mk under a key derived from password with parameters
// p, bound to the Digital ID id. Run it under a Limiter: it takes
// p.MemoryBytes() of memory.
func WrapMasterKey(password Secret, mk *MasterKey, id string, p Params) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(id) > maxIDLen {
		return nil, fmt.Errorf("seal: id longer than %d bytes", maxIDLen)
	}
	if mk == nil || mk.wiped {
		return nil, ErrWiped
	}
	rec := &record{Info: Info{Version: formatVersion, Kind: KindMasterKey, ID: id, Purpose: purposeMaster, Params: p}}
	rec.salt = make([]byte, saltSize)
	rec.nonce = make([]byte, nonceSize)
	if _, err := rand.Read(rec.salt); err != nil {
		return nil, fmt.Errorf("seal: draw salt: %w", err)
	}
	if _, err := rand.Read(rec.nonce); err != nil {
		return nil, fmt.Errorf("seal: draw nonce: %w", err)
	}
	kek, check := derive(password, rec.salt, p)
	defer clear(kek)
	rec.check = check
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	rec.sealed = make([]byte, MasterKeySize+tagSize) // length fixed before encoding the header
	hdr, aadLen := rec.encode()
	sealed := aead.Seal(nil, rec.nonce, mk.k[:], hdr[:aadLen])
	return append(hdr[:aadLen+4:aadLen+4], sealed...), nil
}

// UnwrapMasterKey opens a wrapped master key with password. The record must
// belong to id. A wrong password gives ErrWrongPassword; anything else wrong
// with the record gives ErrCorrupt.
func UnwrapMasterKey(password Secret, blob []byte, id string) (*MasterKey, error) {
	rec, err := parse(blob)
	if err != nil {
		return nil, err
	}
	if rec.Kind != KindMasterKey {
		return nil, fmt.Errorf("%w: not a wrapped master key", ErrCorrupt)
	}
	if rec.ID != id {
		return nil, fmt.Errorf("%w: record belongs to another Digital ID", ErrCorrupt)
	}
	kek, check := derive(password, rec.salt, rec.Params)
	defer clear(kek)
	if !hmac.Equal(check, rec.check) {
		return nil, ErrWrongPassword
	}
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, rec.nonce, rec.sealed, blob[:rec.aadLen])
	if err != nil {
		return nil, fmt.Errorf("%w: master key fails authentication", ErrCorrupt)
	}
	defer clear(plain)
	return MasterKeyFromBytes(plain)
}

// ChangePassword re-wraps the master key of blob under newPassword with
// parameters p; keys sealed under that master key stay valid as they are.
// It runs Argon2 twice.
func ChangePassword(oldPassword, newPassword Secret, blob []byte, id string, p Params) ([]byte, error) {
	mk, err := UnwrapMasterKey(oldPassword, blob, id)
	if err != nil {
		return nil, err
	}
	defer mk.Wipe()
	return WrapMasterKey(newPassword, mk, id, p)
}

// Seal encrypts a private key (PKCS#8 DER) under mk, bound to record id and
// purpose.
func Seal(mk *MasterKey, id, purpose string, plaintext []byte) ([]byte, error) {
	switch {
	case purpose == "" || len(purpose) > 255:
		return nil, fmt.Errorf("seal: purpose must be 1..255 bytes")
	case len(id) > maxIDLen:
		return nil, fmt.Errorf("seal: id longer than %d bytes", maxIDLen)
	case len(plaintext)+tagSize > maxSealedLen:
		return nil, fmt.Errorf("seal: plaintext too long")
	}
	aead, err := mk.aead()
	if err != nil {
		return nil, err
	}
	rec := &record{Info: Info{Version: formatVersion, Kind: KindSealedKey, ID: id, Purpose: purpose}}
	rec.nonce = make([]byte, nonceSize)
	if _, err := rand.Read(rec.nonce); err != nil {
		return nil, fmt.Errorf("seal: draw nonce: %w", err)
	}
	hdr, aadLen := rec.encode()
	sealed := aead.Seal(nil, rec.nonce, plaintext, hdr[:aadLen])
	out := binary.BigEndian.AppendUint32(hdr[:aadLen:aadLen], uint32(len(sealed)))
	return append(out, sealed...), nil
}

// Open decrypts a sealed private key; the record must carry the expected id
// and purpose. The caller wipes the returned bytes after use.
func Open(mk *MasterKey, blob []byte, id, purpose string) ([]byte, error) {
	rec, err := parse(blob)
	if err != nil {
		return nil, err
	}
	if rec.Kind != KindSealedKey {
		return nil, fmt.Errorf("%w: not a sealed key", ErrCorrupt)
	}
	if rec.ID != id || rec.Purpose != purpose {
		return nil, fmt.Errorf("%w: record bound to another id or purpose", ErrCorrupt)
	}
	aead, err := mk.aead()
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, rec.nonce, rec.sealed, blob[:rec.aadLen])
	if err != nil {
		return nil, fmt.Errorf("%w: sealed key fails authentication (altered, or another master key)", ErrCorrupt)
	}
	return plain, nil
}
