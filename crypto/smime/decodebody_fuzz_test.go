package smime

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// FuzzDecodeBase64Body checks the fast base64 body decoder (whole lines
// with AVX2 where the CPU has it, halves side by side for large bodies,
// then the fallbacks) against the plain tolerant decoder: whenever the
// latter accepts a body, the fast one gives the same bytes. The fuzzer
// edits a few 76-character lines of encoded data, so mutations land on
// and around line breaks, padding and foreign characters.
func FuzzDecodeBase64Body(f *testing.F) {
	var enc bytes.Buffer
	writeBase64Lines(&enc, bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 40))
	f.Add(enc.Bytes())
	f.Add([]byte("QUJD\r\nREVG\r\n"))
	f.Add([]byte("QUI=\r\n\r\n"))
	f.Add(bytes.ReplaceAll(enc.Bytes(), []byte("\r\n"), []byte("\n")))
	f.Fuzz(func(t *testing.T, body []byte) {
		want, wantErr := DecodeBase64(body)
		got, err := decodeBase64Body(bytes.Clone(body))
		if wantErr != nil {
			return // the fast path may reject or read leniently what the plain one rejects
		}
		if err != nil {
			t.Fatalf("rejected a body DecodeBase64 reads: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("decoded %d bytes differing from DecodeBase64's %d", len(got), len(want))
		}
	})
}

// TestDecodeBase64BodyLargeMatches runs the side-by-side halves (bodies
// past the parallel threshold) with a foreign character placed at many
// offsets, against encoding/base64.
func TestDecodeBase64BodyLargeMatches(t *testing.T) {
	data := make([]byte, 600<<10)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	var enc bytes.Buffer
	writeBase64Lines(&enc, data)
	got, err := decodeBase64Body(enc.Bytes())
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("clean body: %v, equal %v", err, bytes.Equal(got, data))
	}
	for _, off := range []int{0, 1, 75, 76, 77, 78, 4096, len(enc.Bytes()) / 2, len(enc.Bytes())/2 + 1, len(enc.Bytes()) - 3} {
		bad := bytes.Clone(enc.Bytes())
		bad[off] = '*'
		_, err := decodeBase64Body(bad)
		_, stdErr := base64.StdEncoding.Decode(make([]byte, len(bad)), bad)
		if (err == nil) != (stdErr == nil) {
			t.Errorf("'*' at %d: error %v, encoding/base64 %v", off, err, stdErr)
		}
	}
}
