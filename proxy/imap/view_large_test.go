package imap

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"

	"smimeproxy/crypto/smime"
)

// A 25 MB encrypted message is opened with a bounded number of copies,
// and a view larger than the cache bound is not kept.
func TestViewLargeEncryptedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("25 MB message: not in -short")
	}
	w := newSVWorld(t)
	const size = 25 << 20
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	body := strings.Repeat(line, size/len(line))
	plain := []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: big\r\n" +
		"Content-Type: text/plain\r\n\r\n" + body)
	raw := svEncrypt(t, plain, smime.AES256GCM, w.bob)
	plain = nil
	body = ""
	v := w.viewer(t, 16<<20)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	view, err := v.View(context.Background(), svKey(1), raw)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got := svStatus(t, view.Raw); got != "decrypted; signature absent" {
		t.Fatalf("status %q", got)
	}
	if n := len(view.Raw) - headerEnd(view.Raw); n != size/len(line)*len(line) {
		t.Fatalf("decrypted body %d bytes", n)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("25 MB message (%d bytes encoded): %d MB allocated to view it", len(raw), alloc>>20)
	// The race detector's instrumentation moves some buffers to the heap
	// (about 2.3× the encoded size normally, 4.2× under -race), so the
	// bound is looser there; it still catches a copy per decoding step.
	factor := 4
	if svRace {
		factor = 6
	}
	if limit := uint64(factor * len(raw)); alloc > limit {
		t.Fatalf("viewing allocated %d bytes, more than %d× the encoded message (%d)", alloc, factor, limit)
	}
	if v.Lookup(svKey(1)) != nil {
		t.Fatal("a view larger than the cache bound was kept")
	}
	if used, _ := v.CacheStats(); used > 16<<20 {
		t.Fatalf("cache holds %d bytes", used)
	}
	// Garbage of the same size is refused as malformed, not worked on.
	junk := append([]byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n"), bytes.Repeat([]byte("QUFB"), size/4)...)
	view, err = v.View(context.Background(), svKey(2), junk)
	if err != nil {
		t.Fatal(err)
	}
	if got := svStatus(t, view.Raw); got != "not-decrypted; signature unknown; error=malformed" {
		t.Fatalf("25 MB garbage: status %q", got)
	}
}
