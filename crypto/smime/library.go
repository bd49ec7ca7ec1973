package smime

import (
	"crypto"
	"sync"

	"github.com/smallstep/pkcs7"
)

var configureOnce sync.Once

// ConfigureLibrary sets the algorithm choices of github.com/smallstep/pkcs7,
// which are package globals there, once per process: AES-256-CBC content
// encryption with RSA PKCS#1 v1.5 key transport (the RFC 8551 baseline
// every client reads) and SHA-256 wherever it takes a key-encryption hash.
// Call it at start-up, before any goroutine uses pkcs7; later calls do
// nothing, so no message can change the choice for another.
//
// The envelope code of this package does not depend on these globals: it
// takes the cipher and key transport per message from EncryptOptions and
// Recipient, and writes and reads the CMS structures itself.
func ConfigureLibrary() {
	configureOnce.Do(func() {
		pkcs7.ContentEncryptionAlgorithm = pkcs7.EncryptionAlgorithmAES256CBC
		pkcs7.KeyEncryptionAlgorithm = pkcs7.OIDEncryptionAlgorithmRSA
		pkcs7.KeyEncryptionHash = crypto.SHA256
		// Old (pre-Go 1.23 rules) certificates are parsed only through the
		// standard crypto/x509 parser; no fallback to a lenient copy.
		pkcs7.SetFallbackLegacyX509CertificateParserEnabled(false)
	})
}
