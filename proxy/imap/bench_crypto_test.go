package imap

import (
	"fmt"
	"testing"
)

// benchCrypto makes the S/MIME messages of the benchmark and the Viewer
// that opens them.
type benchCrypto struct {
	cacheBytes int64
}

func newBenchCrypto(tb testing.TB) *benchCrypto { return &benchCrypto{cacheBytes: 256 << 20} }

func (bc *benchCrypto) encrypt(tb testing.TB, subject string, size int) []byte {
	return fakeMessageBody(subject, benchBody(size*3/4, len(subject)))
}

func (bc *benchCrypto) viewer(tb testing.TB) Viewer { return &fakeViewer{} }

var _ = fmt.Sprint
