package seal

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Record layout (all integers big-endian):
//
//	magic    "SMSL"
//	version  u8   (1)
//	kind     u8   (1 = wrapped master key, 2 = sealed private key)
//	id       u16 length + bytes
//	purpose  u8 length + bytes
//	kind 1:  kdf u8 (1 = Argon2id), time u32, memory KiB u32, threads u8,
//	         salt u8 length + bytes, check u8 length + bytes
//	nonce    u8 length + bytes (12)
//	sealed   u32 length + bytes (AES-256-GCM ciphertext and tag)
//
// Everything before the sealed length is the GCM associated data, so the
// version, kind, id, purpose, parameters and nonce are all authenticated.
// Nothing may follow the sealed bytes.

const (
	magic         = "SMSL"
	formatVersion = 1
	kdfArgon2id   = 1
	nonceSize     = 12
	tagSize       = 16
	saltSize      = 16
	checkSize     = 16
	maxIDLen      = 1024
	maxSealedLen  = 1 << 20 // a PKCS#8 RSA-16384 key is far below this
)

// Kind says what a record holds.
type Kind uint8

// Record kinds.
const (
	KindMasterKey Kind = 1 // a master key wrapped under a password
	KindSealedKey Kind = 2 // a private key sealed under a master key
)

// Purposes of sealed keys; any non-empty string up to 255 bytes is accepted,
// these are the ones the Digital ID layer uses.
const (
	PurposeSign    = "sign"
	PurposeEncrypt = "encrypt"
	PurposeEscrow  = "escrow"
	purposeMaster  = "master"
)

// ErrCorrupt reports a record that is malformed, truncated, of an unknown
// version, bound to another id or purpose, or altered.
var ErrCorrupt = errors.New("seal: record is corrupt or was altered")

// Info describes a record without opening it.
type Info struct {
	Version uint8
	Kind    Kind
	ID      string
	Purpose string
	Params  Params // set for KindMasterKey only
}

type record struct {
	Info
	salt   []byte
	check  []byte
	nonce  []byte
	sealed []byte
	// aadLen is how many leading bytes of the encoded record are the
	// associated data.
	aadLen int
}

// encode lays the record out; the associated data is the returned slice's
// first aadLen bytes.
func (r *record) encode() ([]byte, int) {
	b := make([]byte, 0, 64+len(r.ID)+len(r.Purpose)+len(r.sealed))
	b = append(b, magic...)
	b = append(b, r.Version, byte(r.Kind))
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.ID)))
	b = append(b, r.ID...)
	b = append(b, byte(len(r.Purpose)))
	b = append(b, r.Purpose...)
	if r.Kind == KindMasterKey {
		b = append(b, kdfArgon2id)
		b = binary.BigEndian.AppendUint32(b, r.Params.Time)
		b = binary.BigEndian.AppendUint32(b, r.Params.MemoryKiB)
		b = append(b, r.Params.Threads)
		b = append(b, byte(len(r.salt)))
		b = append(b, r.salt...)
		b = append(b, byte(len(r.check)))
		b = append(b, r.check...)
	}
	b = append(b, byte(len(r.nonce)))
	b = append(b, r.nonce...)
	aadLen := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.sealed)))
	b = append(b, r.sealed...)
	return b, aadLen
}

// reader consumes a blob front to back; the first failure sticks, and every
// read checks the remaining length before slicing.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = fmt.Errorf("%w: truncated at %s (offset %d)", ErrCorrupt, what, r.off)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(what string) uint8 {
	v := r.take(1, what)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u16(what string) uint16 {
	v := r.take(2, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (r *reader) u32(what string) uint32 {
	v := r.take(4, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

// parse decodes and checks the structure of a record. It never derives keys
// or decrypts.
func parse(blob []byte) (*record, error) {
	r := &reader{b: blob}
	if m := r.take(len(magic), "magic"); r.err == nil && string(m) != magic {
		return nil, fmt.Errorf("%w: not a sealed record", ErrCorrupt)
	}
	rec := &record{}
	rec.Version = r.u8("version")
	kind := r.u8("kind")
	if r.err != nil {
		return nil, r.err
	}
	if rec.Version != formatVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrCorrupt, rec.Version)
	}
	rec.Kind = Kind(kind)
	if rec.Kind != KindMasterKey && rec.Kind != KindSealedKey {
		return nil, fmt.Errorf("%w: unknown record kind %d", ErrCorrupt, kind)
	}
	idLen := int(r.u16("id length"))
	if idLen > maxIDLen {
		return nil, fmt.Errorf("%w: id length %d too long", ErrCorrupt, idLen)
	}
	rec.ID = string(r.take(idLen, "id"))
	rec.Purpose = string(r.take(int(r.u8("purpose length")), "purpose"))
	if rec.Kind == KindMasterKey {
		if kdf := r.u8("kdf"); r.err == nil && kdf != kdfArgon2id {
			return nil, fmt.Errorf("%w: unknown key derivation %d", ErrCorrupt, kdf)
		}
		rec.Params.Time = r.u32("argon2 time")
		rec.Params.MemoryKiB = r.u32("argon2 memory")
		rec.Params.Threads = r.u8("argon2 threads")
		rec.salt = r.take(int(r.u8("salt length")), "salt")
		rec.check = r.take(int(r.u8("check length")), "check")
	}
	rec.nonce = r.take(int(r.u8("nonce length")), "nonce")
	rec.aadLen = r.off
	sealedLen := r.u32("sealed length")
	if r.err == nil && sealedLen > maxSealedLen {
		return nil, fmt.Errorf("%w: sealed length %d too long", ErrCorrupt, sealedLen)
	}
	rec.sealed = r.take(int(sealedLen), "sealed data")
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(blob) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(blob)-r.off)
	}
	if err := rec.validate(); err != nil {
		return nil, err
	}
	return rec, nil
}

// validate checks field contents once the layout parsed.
func (r *record) validate() error {
	switch {
	case len(r.nonce) != nonceSize:
		return fmt.Errorf("%w: nonce length %d", ErrCorrupt, len(r.nonce))
	case len(r.sealed) < tagSize:
		return fmt.Errorf("%w: sealed data shorter than a GCM tag", ErrCorrupt)
	case r.Purpose == "":
		return fmt.Errorf("%w: empty purpose", ErrCorrupt)
	}
	if r.Kind == KindMasterKey {
		if r.Purpose != purposeMaster {
			return fmt.Errorf("%w: master key record with purpose %q", ErrCorrupt, r.Purpose)
		}
		if len(r.salt) != saltSize || len(r.check) != checkSize {
			return fmt.Errorf("%w: salt or check value of wrong length", ErrCorrupt)
		}
		if err := r.Params.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	return nil
}

// Inspect reports what a record is, without a password or key. It fails
// on a malformed record exactly as opening it would.
func Inspect(blob []byte) (Info, error) {
	rec, err := parse(blob)
	if err != nil {
		return Info{}, err
	}
	return rec.Info, nil
}
