package seal

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

// fastParams keep tests quick; the defaults are exercised by the benchmarks
// and TestDefaultParamsRoundTrip.
var fastParams = Params{Time: 1, MemoryKiB: minMemoryKiB, Threads: 1}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newWrapped(t testing.TB, pw Secret, id string) (*MasterKey, []byte) {
	t.Helper()
	mk, err := NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := WrapMasterKey(pw, mk, id, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	return mk, blob
}

func TestRoundTrip(t *testing.T) {
	mk, wrap := newWrapped(t, "correct horse", "id-1")
	got, err := UnwrapMasterKey("correct horse", wrap, "id-1")
	if err != nil {
		t.Fatalf("unwrap: %v", err)
	}
	if !bytes.Equal(got.Bytes(), mk.Bytes()) {
		t.Fatal("unwrapped master key differs from the wrapped one")
	}
	for _, purpose := range []string{PurposeSign, PurposeEncrypt, PurposeEscrow} {
		key := randomBytes(t, 1200)
		blob, err := Seal(mk, "key-7", purpose, key)
		if err != nil {
			t.Fatalf("seal %s: %v", purpose, err)
		}
		if bytes.Contains(blob, key[:32]) {
			t.Fatalf("sealed %s record contains plaintext", purpose)
		}
		plain, err := Open(got, blob, "key-7", purpose)
		if err != nil {
			t.Fatalf("open %s: %v", purpose, err)
		}
		if !bytes.Equal(plain, key) {
			t.Fatalf("open %s: plaintext differs", purpose)
		}
		info, err := Inspect(blob)
		if err != nil || info.Kind != KindSealedKey || info.ID != "key-7" || info.Purpose != purpose || info.Version != 1 {
			t.Fatalf("inspect %s: %+v, %v", purpose, info, err)
		}
	}
	info, err := Inspect(wrap)
	if err != nil || info.Kind != KindMasterKey || info.Params != fastParams || info.ID != "id-1" {
		t.Fatalf("inspect wrap: %+v, %v", info, err)
	}
}

func TestDefaultParamsRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB Argon2 run")
	}
	mk, _ := NewMasterKey()
	blob, err := WrapMasterKey("pw", mk, "id", DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(blob)
	if err != nil || info.Params != (Params{Time: 3, MemoryKiB: 65536, Threads: 4}) {
		t.Fatalf("stored params %+v, %v", info.Params, err)
	}
	got, err := UnwrapMasterKey("pw", blob, "id")
	if err != nil || !bytes.Equal(got.Bytes(), mk.Bytes()) {
		t.Fatalf("unwrap with default params: %v", err)
	}
}

func TestWrongPassword(t *testing.T) {
	_, wrap := newWrapped(t, "right", "id-1")
	_, err := UnwrapMasterKey("wrong", wrap, "id-1")
	if !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: got %v, want ErrWrongPassword", err)
	}
	if errors.Is(err, ErrCorrupt) {
		t.Fatal("wrong password reported as corrupt record")
	}
	// A wrap of one Digital ID does not open as another's, even with the
	// right password.
	if _, err := UnwrapMasterKey("right", wrap, "id-2"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrap under another id: got %v, want ErrCorrupt", err)
	}
}

func TestChangePasswordKeepsKeysReadable(t *testing.T) {
	mk, wrap := newWrapped(t, "old", "id-1")
	key := randomBytes(t, 300)
	sealed, err := Seal(mk, "k1", PurposeEncrypt, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ChangePassword("not-old", "new", wrap, "id-1", fastParams); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("change with wrong old password: %v", err)
	}
	newWrap, err := ChangePassword("old", "new", wrap, "id-1", Params{Time: 2, MemoryKiB: minMemoryKiB, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnwrapMasterKey("old", newWrap, "id-1"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("old password on new wrap: %v", err)
	}
	mk2, err := UnwrapMasterKey("new", newWrap, "id-1")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Open(mk2, sealed, "k1", PurposeEncrypt)
	if err != nil || !bytes.Equal(plain, key) {
		t.Fatalf("key sealed before the change: %v", err)
	}
	if info, _ := Inspect(newWrap); info.Params.Time != 2 || info.Params.Threads != 2 {
		t.Fatalf("new params not stored: %+v", info.Params)
	}
}

func TestWipe(t *testing.T) {
	mk, _ := NewMasterKey()
	blob, _ := Seal(mk, "k", PurposeSign, []byte("key"))
	mk.Wipe()
	if !bytes.Equal(mk.Bytes(), make([]byte, MasterKeySize)) {
		t.Fatal("Wipe left key bytes")
	}
	if _, err := Open(mk, blob, "k", PurposeSign); !errors.Is(err, ErrWiped) {
		t.Fatalf("open with wiped key: %v", err)
	}
	if _, err := Seal(mk, "k", PurposeSign, []byte("key")); !errors.Is(err, ErrWiped) {
		t.Fatalf("seal with wiped key: %v", err)
	}
	if _, err := WrapMasterKey("pw", mk, "id", fastParams); !errors.Is(err, ErrWiped) {
		t.Fatalf("wrap a wiped key: %v", err)
	}
}

func TestOtherMasterKeyFails(t *testing.T) {
	mk1, _ := NewMasterKey()
	mk2, _ := NewMasterKey()
	blob, _ := Seal(mk1, "k", PurposeSign, []byte("key"))
	if _, err := Open(mk2, blob, "k", PurposeSign); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open under another master key: %v", err)
	}
}

func TestParamsBounds(t *testing.T) {
	mk, _ := NewMasterKey()
	for _, p := range []Params{
		{Time: 0, MemoryKiB: minMemoryKiB, Threads: 1},
		{Time: 1, MemoryKiB: 1024, Threads: 1},
		{Time: 1, MemoryKiB: maxMemoryKiB + 1, Threads: 1},
		{Time: 1, MemoryKiB: minMemoryKiB, Threads: 0},
		{Time: maxTime + 1, MemoryKiB: minMemoryKiB, Threads: 1},
	} {
		if _, err := WrapMasterKey("pw", mk, "id", p); !errors.Is(err, ErrParams) {
			t.Errorf("wrap with %+v: %v, want ErrParams", p, err)
		}
	}
	// A record claiming 4 TiB of memory is refused before any derivation.
	rec := &record{Info: Info{Version: 1, Kind: KindMasterKey, ID: "id", Purpose: purposeMaster,
		Params: Params{Time: 1, MemoryKiB: 1<<32 - 1, Threads: 1}},
		salt: make([]byte, saltSize), check: make([]byte, checkSize), nonce: make([]byte, nonceSize),
		sealed: make([]byte, MasterKeySize+tagSize)}
	blob, _ := rec.encode()
	if _, err := UnwrapMasterKey("pw", blob, "id"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("record with huge memory: %v", err)
	}
}
