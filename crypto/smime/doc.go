// Package smime builds and parses S/MIME messages (RFC 8551) on top of
// Cryptographic Message Syntax (RFC 5652): multipart/signed and opaque
// signed-data with the RFC 8551 signed attributes (SMIMECapabilities,
// SMIMEEncryptionKeyPreference), signature verification against given
// roots with key-usage and address checks, EnvelopedData and
// AuthEnvelopedData (RFC 5083/5084) encryption and decryption with RSA
// (PKCS#1 v1.5, RSAES-OAEP RFC 8017/4055) and ECDH (RFC 5753) recipients.
//
// The MIME layer (RFC 2045/2046) is minimal and bounded: it splits a
// message into the header fields that stay outside the wrapping and the
// entity inside, canonicalises entities before signing (CRLF, 8-bit parts
// re-encoded) and parses entities with limits on header size, line length
// and nesting depth, so hostile input yields errors rather than unbounded
// work.
//
// SignedData is written and read here with cryptobyte: signing needs an
// injectable signingTime and the RFC 8551 attributes, verification needs
// the signed attributes exactly as sent and signers named by
// subjectKeyIdentifier, none of which github.com/smallstep/pkcs7 offers.
// Signature values are checked with crypto/rsa and crypto/ecdsa directly,
// so SHA-1 signatures verify and are flagged weak rather than refused.
// Private keys are used only through crypto.Signer and
// crypto.Decrypter, so keys held elsewhere plug in unchanged.
package smime
