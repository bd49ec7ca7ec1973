// Package seal protects private keys at rest under a password.
//
// A password goes through Argon2id (RFC 9106) to a key-encryption key (KEK);
// the KEK wraps a random 32-byte master key per Digital ID with AES-256-GCM
// (NIST SP 800-38D); private keys (PKCS#8 DER, RFC 5958) are sealed with
// AES-256-GCM under that master key. Changing the password re-wraps only the
// master key, so the sealed keys stay as they are.
//
// Every record is a self-describing, versioned binary blob whose whole
// header — format version, kind, Argon2 parameters, salt, record id, purpose
// and nonce — is the GCM associated data: a record moved to another id or
// purpose, or any flipped header byte, fails to open. The parser checks
// every length before slicing, so a short or garbled blob is an error, never
// a panic.
//
// Argon2id with the default parameters takes 64 MiB per derivation; a
// Limiter bounds how many run at once so a burst of unlocks cannot exhaust
// memory.
package seal
