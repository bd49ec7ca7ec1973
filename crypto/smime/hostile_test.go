package smime_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"smimeproxy/crypto/smime"
	"smimeproxy/internal/mailtest"
)

// Hostile input: every case ends in a clear error (a sentinel callers can
// branch on) or a correct result, within bounded memory (and a hang guard), and
// never in a panic. The bounds asserted are generous multiples of the
// input, as allocation totals are deterministic for a given input but
// differ between implementations.

// hostileKit: alice is the recipient and signer, dave holds a key that is
// never a recipient, other is an unrelated PKI.
type hostileKit struct {
	alice, dave *mailtest.User
	roots       *mailtest.PKI
	other       *mailtest.PKI
}

func newHostileKit(t testing.TB) *hostileKit {
	p := mailtest.NewPKI(t)
	return &hostileKit{
		alice: p.User(t, "alice@example.test", mailtest.RSA),
		dave:  p.User(t, "dave@example.test", mailtest.RSA),
		roots: p,
		other: mailtest.OtherPKI(t),
	}
}

func (k *hostileKit) keys(u *mailtest.User) []smime.KeyPair {
	return []smime.KeyPair{{Cert: u.EncCert, Key: u.EncKey}}
}

func (k *hostileKit) encrypt(t testing.TB, msg []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := smime.Encrypt(&out, msg, []smime.Recipient{{Cert: k.alice.EncCert}}, smime.EncryptOptions{}); err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	return out.Bytes()
}

func (k *hostileKit) sign(t testing.TB, msg []byte, opaque bool) []byte {
	t.Helper()
	var out bytes.Buffer
	opts := smime.SignOptions{Cert: k.alice.SignCert, Key: k.alice.SignKey, Chain: k.alice.Chain, Opaque: opaque}
	if err := smime.Sign(&out, msg, opts); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return out.Bytes()
}

func plainMessage(body string) []byte {
	return []byte("From: alice@example.test\r\nTo: alice@example.test\r\nSubject: hostile\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + body)
}

// hangGuard is the wall-clock bound of one hostile case. It is a guard
// against a loop that never ends, not a performance bound: the cases take
// milliseconds, and under the race detector on a loaded 2-core CI machine
// still well under a second. What the tests assert about the cost of
// hostile input is the allocation total, which does not depend on load.
const hangGuard = 2 * time.Minute

// bounded runs f and fails the test when it allocates more than limit
// bytes in total (deterministic for a given input) or runs past
// hangGuard. Every failure states both figures, so a report from CI says
// which bound was crossed and by how much. A panic fails the test as well,
// as any panic in a test does.
func bounded(t *testing.T, limit uint64, f func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	figures := fmt.Sprintf("allocated %d bytes (bound %d) in %v (guard %v), GOMAXPROCS %d, %d GC cycles",
		alloc, limit, elapsed, hangGuard, runtime.GOMAXPROCS(0), after.NumGC-before.NumGC)
	switch {
	case alloc > limit:
		t.Errorf("allocation bound crossed: %s", figures)
	case elapsed > hangGuard:
		t.Errorf("hang guard crossed: %s", figures)
	default:
		t.Log(figures)
	}
}

// wantErr fails unless err wraps one of the sentinels.
func wantErr(t *testing.T, err error, sentinels ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one of %v", sentinels)
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Errorf("error %q wraps none of %v", err, sentinels)
}

// bodyStart is the offset of the body (after the first empty line).
func bodyStart(t *testing.T, msg []byte) int {
	t.Helper()
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	if i < 0 {
		t.Fatal("message has no header/body separator")
	}
	return i + 4
}

func TestHostileEncrypted(t *testing.T) {
	k := newHostileKit(t)
	enc := k.encrypt(t, plainMessage("secret\r\n"))
	body := bodyStart(t, enc)
	malformed := []error{smime.ErrMalformed, smime.ErrMalformedMIME}
	cases := []struct {
		name  string
		msg   []byte
		keys  []smime.KeyPair
		wants []error
	}{
		{"truncated-base64-half", enc[:body+(len(enc)-body)/2], k.keys(k.alice), malformed},
		{"truncated-base64-by-one-char", bytes.TrimRight(enc, "\r\n")[:len(bytes.TrimRight(enc, "\r\n"))-1], k.keys(k.alice), malformed},
		{"truncated-base64-after-whole-lines", enc[:body+78*3], k.keys(k.alice), malformed},
		{"garbled-base64", append(append(append([]byte{}, enc[:body+100]...), "!!*%~"...), enc[body+100:]...), k.keys(k.alice), malformed},
		{"empty-body", enc[:body], k.keys(k.alice), append(malformed, smime.ErrNotEncrypted)},
		{"not-encrypted", plainMessage("hello\r\n"), k.keys(k.alice), []error{smime.ErrNotEncrypted}},
		{"wrong-recipient-key", enc, k.keys(k.dave), []error{smime.ErrNoMatchingRecipient}},
		{"recipient-cert-wrong-key", enc, []smime.KeyPair{{Cert: k.alice.EncCert, Key: k.dave.EncKey}}, []error{smime.ErrDecryptFailed}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bounded(t, 64<<20, func() {
				d, err := smime.Decrypt(tc.msg, tc.keys)
				if d != nil {
					t.Errorf("Decrypt returned a result beside error %v", err)
				}
				wantErr(t, err, tc.wants...)
				t.Logf("error: %v", err)
			})
		})
	}
}

// der of a fresh envelope to alice, for surgery.
func (k *hostileKit) envelopeDER(t *testing.T) []byte {
	der, err := smime.EncryptEntity([]byte("Content-Type: text/plain\r\n\r\n"+strings.Repeat("secret line\r\n", 100)), []smime.Recipient{{Cert: k.alice.EncCert}}, smime.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestHostileDER(t *testing.T) {
	k := newHostileKit(t)
	env := k.envelopeDER(t)
	aes256cbc := []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a}
	rsaEnc := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}
	replace := func(old []byte, last byte) []byte {
		if bytes.Count(env, old) != 1 {
			t.Fatalf("OID %x occurs %d times in the envelope, want once", old, bytes.Count(env, old))
		}
		i := bytes.Index(env, old)
		out := bytes.Clone(env)
		out[i+len(old)-1] = last
		return out
	}
	nested := func(prefix []byte, n int) []byte { return bytes.Repeat(prefix, n) }
	cases := []struct {
		name  string
		der   []byte
		wants []error
	}{
		{"empty", nil, []error{smime.ErrMalformed}},
		{"random-bytes", randomBytes(4096), []error{smime.ErrMalformed}},
		{"truncated", env[:len(env)/2], []error{smime.ErrMalformed}},
		{"trailing-garbage", append(bytes.Clone(env), 0, 0, 0xff), []error{smime.ErrMalformed}},
		{"length-0x7fffffff", append([]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff}, env[4:]...), []error{smime.ErrMalformed}},
		{"length-8-bytes", append([]byte{0x30, 0x88, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, env[4:]...), []error{smime.ErrMalformed}},
		{"inner-length-0x7fffffff", absurdInnerLength(t, env), []error{smime.ErrMalformed}},
		{"indefinite-length-bomb", nested([]byte{0x30, 0x80}, 200000), []error{smime.ErrMalformed}},
		{"definite-nesting-bomb", definiteNest(100000), []error{smime.ErrMalformed}},
		{"unknown-content-cipher-oid", replace(aes256cbc, 0x63), []error{smime.ErrUnsupportedAlgorithm}},
		{"unknown-key-transport-oid", replace(rsaEnc, 0x63), []error{smime.ErrUnsupportedAlgorithm, smime.ErrNoMatchingRecipient}},
		{"not-enveloped-content-type", replaceContentType(t, env), []error{smime.ErrNotEncrypted, smime.ErrUnsupportedAlgorithm, smime.ErrMalformed}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bounded(t, 16<<20+uint64(10*len(tc.der)), func() {
				d, err := smime.DecryptDER(tc.der, k.keys(k.alice))
				if d != nil {
					t.Errorf("DecryptDER returned a result beside error %v", err)
				}
				wantErr(t, err, tc.wants...)
				t.Logf("error: %v", err)
			})
		})
	}
}

// absurdInnerLength sets the length of the first OCTET STRING or [0]
// content (the encrypted content) to 0x7fffffff with a long-form length.
func absurdInnerLength(t *testing.T, env []byte) []byte {
	t.Helper()
	// The encrypted content is the last element: [0] IMPLICIT OCTET STRING
	// (tag 0x80) near the end. Find its header by scanning from the back
	// for a tag whose long-form length reaches the end of the buffer.
	for i := len(env) - 16; i > 0; i-- {
		if env[i] != 0x80 || env[i+1]&0x80 == 0 {
			continue
		}
		n := int(env[i+1] & 0x7f)
		if n == 0 || n > 4 || i+2+n > len(env) {
			continue
		}
		l := 0
		for _, b := range env[i+2 : i+2+n] {
			l = l<<8 | int(b)
		}
		if i+2+n+l == len(env) {
			out := append(bytes.Clone(env[:i+1]), 0x84, 0x7f, 0xff, 0xff, 0xff)
			return append(out, env[i+2+n:]...)
		}
	}
	t.Fatal("no encrypted-content field found in the envelope")
	return nil
}

// replaceContentType turns the outer contentType (envelopedData,
// 1.2.840.113549.1.7.3) into data (1.2.840.113549.1.7.1).
func replaceContentType(t *testing.T, env []byte) []byte {
	t.Helper()
	oid := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}
	i := bytes.Index(env, oid)
	if i < 0 || i > 8 {
		t.Fatal("envelope does not start with the envelopedData OID")
	}
	out := bytes.Clone(env)
	out[i+len(oid)-1] = 0x01
	return out
}

// definiteNest is n SEQUENCEs, each holding the next, with definite
// four-byte lengths, around a NULL.
func definiteNest(n int) []byte {
	out := make([]byte, 6*n+2)
	for i := range n {
		l := len(out) - 6*(i+1)
		copy(out[6*i:], []byte{0x30, 0x84, byte(l >> 24), byte(l >> 16), byte(l >> 8), byte(l)})
	}
	out[6*n] = 0x05
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	b[0] = 0x30
	return b
}

func TestHostileSigned(t *testing.T) {
	k := newHostileKit(t)
	msg := plainMessage("signed content\r\n")
	detached := k.sign(t, msg, false)
	opaque := k.sign(t, msg, true)
	good := smime.VerifyOptions{Roots: k.roots.Roots()}
	if res, err := smime.Verify(detached, good); err != nil || !res.Valid {
		t.Fatalf("unchanged detached signature does not verify: %v %+v", err, res)
	}
	ob := bodyStart(t, opaque)
	sigAt := bytes.LastIndex(detached, []byte("application/pkcs7-signature"))
	if sigAt < 0 {
		t.Fatal("no signature part")
	}
	sigBody := sigAt + bodyStart(t, detached[sigAt:])
	cases := []struct {
		name string
		msg  []byte
		opts smime.VerifyOptions
	}{
		{"tampered-content", bytes.Replace(detached, []byte("signed content"), []byte("signed c0ntent"), 1), good},
		{"wrong-roots", detached, smime.VerifyOptions{Roots: k.other.Roots()}},
		{"no-roots", detached, smime.VerifyOptions{}},
		{"opaque-truncated-base64", opaque[:ob+(len(opaque)-ob)/2], good},
		{"opaque-garbled-base64", append(append(bytes.Clone(opaque[:ob+200]), "@@@"...), opaque[ob+200:]...), good},
		{"signature-truncated", append(bytes.Clone(detached[:sigBody+300]), detached[bytes.LastIndex(detached, []byte("\r\n--")):]...), good},
		{"signature-garbled", append(append(bytes.Clone(detached[:sigBody+300]), "%%%%"...), detached[sigBody+300:]...), good},
		{"signature-part-missing", detached[:sigAt], good},
		{"unknown-digest-oid", rewrapOpaque(t, opaque, func(der []byte) []byte { return patchOID(der, oidSHA256, 0x63, -1) }), good},
		{"unknown-signature-oid", rewrapOpaque(t, opaque, func(der []byte) []byte { return patchOID(der, oidRSAEncryption, 0x63, 1) }), good},
		{"signed-data-length-0x7fffffff", rewrapOpaque(t, opaque, func(der []byte) []byte {
			return append([]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff}, der[4:]...)
		}), good},
		{"signed-data-indefinite-bomb", rewrapOpaque(t, opaque, func([]byte) []byte { return bytes.Repeat([]byte{0x30, 0x80}, 200000) }), good},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bounded(t, 64<<20, func() {
				res, err := smime.Verify(tc.msg, tc.opts)
				if err == nil && (res == nil || res.Valid) {
					t.Fatalf("Verify accepted it: %+v", res)
				}
				if err == nil && len(res.Reasons) == 0 {
					t.Error("invalid result without reasons")
				}
				if err != nil {
					t.Logf("error: %v", err)
				} else {
					t.Logf("invalid: %v", res.Reasons)
				}
			})
		})
	}
}

var oidSHA256 = []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}

// oidRSAEncryption is the signature algorithm our signer writes for RSA
// keys; it also appears in every RSA certificate's public key.
var oidRSAEncryption = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}

// patchOID sets the last byte of occurrences of oid in der: every one for
// n < 0, else only the last n (the SignerInfo follows the certificates,
// which carry the same OIDs).
func patchOID(der, oid []byte, last byte, n int) []byte {
	out := bytes.Clone(der)
	var at []int
	for i := 0; ; {
		j := bytes.Index(out[i:], oid)
		if j < 0 {
			break
		}
		at = append(at, i+j)
		i += j + 1
	}
	if n >= 0 && n < len(at) {
		at = at[len(at)-n:]
	}
	for _, i := range at {
		out[i+len(oid)-1] = last
	}
	return out
}

// rewrapOpaque decodes the CMS of an application/pkcs7-mime message,
// changes it with f and encodes it back under the same header.
func rewrapOpaque(t *testing.T, msg []byte, f func([]byte) []byte) []byte {
	t.Helper()
	i := bodyStart(t, msg)
	der, err := smime.DecodeBase64(msg[i:])
	if err != nil {
		t.Fatal(err)
	}
	changed := f(der)
	if bytes.Equal(changed, der) {
		t.Fatal("rewrapOpaque: change left the CMS as it was")
	}
	out := bytes.Clone(msg[:i])
	enc := base64.StdEncoding.EncodeToString(changed)
	for len(enc) > 76 {
		out = append(append(out, enc[:76]...), "\r\n"...)
		enc = enc[76:]
	}
	return append(append(out, enc...), "\r\n"...)
}

// TestHostileLayers: S/MIME layers nested past the limit — signatures and
// envelopes alternating, each layer a little larger — end in ErrTooDeep
// with allocation bounded by the size of the nest, not exponential in it.
func TestHostileLayers(t *testing.T) {
	k := newHostileKit(t)
	msg := plainMessage("layered\r\n")
	for i := range smime.MaxDepth + 2 {
		if i%2 == 0 {
			msg = k.sign(t, msg, false)
		} else {
			msg = k.encrypt(t, msg)
		}
	}
	bounded(t, uint64(64*len(msg))+(16<<20), func() {
		_, err := smime.Open(msg, k.keys(k.alice), smime.VerifyOptions{Roots: k.roots.Roots()})
		wantErr(t, err, smime.ErrTooDeep)
		t.Logf("%d layers, %d bytes: %v", smime.MaxDepth+2, len(msg), err)
	})
}

func TestHostileMIMENesting(t *testing.T) {
	for _, depth := range []int{smime.MaxDepth + 1, 100000} {
		var b strings.Builder
		for i := range depth {
			b.WriteString("Content-Type: multipart/mixed; boundary=\"b" + strconv.Itoa(i) + "\"\r\n\r\n--b" + strconv.Itoa(i) + "\r\n")
		}
		b.WriteString("Content-Type: text/plain\r\n\r\ninnermost\r\n")
		entity := []byte(b.String())
		t.Run("depth-"+strconv.Itoa(depth), func(t *testing.T) {
			bounded(t, 64<<20+uint64(4*len(entity)), func() {
				_, err := smime.ParseEntity(entity)
				wantErr(t, err, smime.ErrTooDeep, smime.ErrMalformedMIME)
			})
		})
	}
	// Exactly at the limit still parses.
	var b strings.Builder
	for i := range smime.MaxDepth {
		b.WriteString("Content-Type: multipart/mixed; boundary=\"b" + strconv.Itoa(i) + "\"\r\n\r\n--b" + strconv.Itoa(i) + "\r\n")
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ninnermost\r\n")
	for i := smime.MaxDepth - 1; i >= 0; i-- {
		b.WriteString("--b" + strconv.Itoa(i) + "--\r\n")
	}
	if _, err := smime.ParseEntity([]byte(b.String())); err != nil {
		t.Errorf("nesting of exactly MaxDepth (%d): %v", smime.MaxDepth, err)
	}
}

func TestHostileHeaders(t *testing.T) {
	long := "Subject: " + strings.Repeat("x", smime.MaxHeaderLine+10) + "\r\n\r\nbody\r\n"
	_, _, err := smime.SplitMessage([]byte(long))
	wantErr(t, err, smime.ErrLineTooLong, smime.ErrHeaderTooLarge)
	many := strings.Repeat("X-Filler: "+strings.Repeat("y", 1000)+"\r\n", smime.MaxHeaderBytes/1000+10) + "\r\nbody\r\n"
	_, _, err = smime.SplitMessage([]byte(many))
	wantErr(t, err, smime.ErrHeaderTooLarge)
}

// TestLargeAttachmentRoundTrip: a 25 MB attachment survives sign, encrypt,
// decrypt and verify byte for byte, each step within a generous
// allocation bound (a multiple of the message size) and the peak heap of
// each step logged as a multiple of the message size.
func TestLargeAttachmentRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("25 MB round trip skipped in -short mode")
	}
	k := newHostileKit(t)
	payload := make([]byte, 25<<20)
	rand.Read(payload)
	var b bytes.Buffer
	b.WriteString("From: alice@example.test\r\nTo: alice@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"big\"\r\n\r\n--big\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n" +
		"--big\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"big.bin\"\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(payload)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--big--\r\n")
	msg := b.Bytes()
	size := uint64(len(msg))

	var signed, sealed []byte
	var dec *smime.Decrypted
	var res *smime.VerifyResult
	steps := []struct {
		name string
		f    func() error
	}{
		{"sign", func() error {
			out := outputBuffer(len(msg), false)
			err := smime.Sign(out, msg, smime.SignOptions{Cert: k.alice.SignCert, Key: k.alice.SignKey, Chain: k.alice.Chain})
			signed = out.Bytes()
			return err
		}},
		{"encrypt", func() error {
			out := outputBuffer(len(signed), true)
			err := smime.Encrypt(out, signed, []smime.Recipient{{Cert: k.alice.EncCert}}, smime.EncryptOptions{})
			sealed = out.Bytes()
			return err
		}},
		{"decrypt", func() (err error) {
			dec, err = smime.Decrypt(sealed, k.keys(k.alice))
			return err
		}},
		{"verify", func() (err error) {
			res, err = smime.Verify(dec.Entity, smime.VerifyOptions{Roots: k.roots.Roots()})
			return err
		}},
	}
	for _, st := range steps {
		var err error
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		peak := peakHeap(func() { err = st.f() })
		elapsed := time.Since(start)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%-8s %6.2fs  allocated %5.1f× message  peak heap above input %5.1f× message", st.name,
			elapsed.Seconds(), float64(alloc)/float64(size), float64(peak)/float64(size))
		if alloc > 16*size {
			t.Errorf("%s allocated %d bytes for a %d-byte message (bound 16×)", st.name, alloc, size)
		}
		if elapsed > hangGuard {
			t.Errorf("%s took %v, hang guard %v", st.name, elapsed, hangGuard)
		}
	}
	if !res.Valid {
		t.Fatalf("signature of the 25 MB message not valid: %v", res.Reasons)
	}
	e, err := smime.ParseEntity(res.Entity)
	if err != nil || len(e.Parts) != 2 {
		t.Fatalf("signed entity: %v, %d parts", err, len(e.Parts))
	}
	got, err := e.Parts[1].Body()
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("attachment after the round trip: %d bytes (%v), differs from the %d sent", len(got), err, len(payload))
	}
}
