// Package identity manages Digital IDs, the Outlook / Exchange Key
// Management Server model done properly: one signing key and one encryption
// key per mailbox under a name, sealed at rest under a key derived from the
// Digital ID's password.
//
// What it does:
//   - security tokens an administrator issues (single-use, bound to a mailbox
//     and a purpose, stored only as an HMAC, consumed atomically);
//   - enrolment with a token: keys generated, certificates issued by the
//     built-in CA (crypto/ca), private keys sealed (crypto/seal), the
//     encryption key escrowed as CMS EnvelopedData (RFC 5652 §6) to the CA's
//     key-recovery certificate, all in one store transaction with the token;
//   - acceptance of the issuing root, as Outlook's Root Store prompt: an ID is
//     usable only after its user accepted the root;
//   - import of keys and certificates from an external CA (PKCS#12, RFC 7292),
//     without escrow;
//   - the unlock cache: the master key of an unlocked ID in memory, with
//     idle and absolute expiry, wiped on lock, revoke and shutdown, and a
//     growing back-off after wrong passwords; the ID's private keys, once
//     opened, are kept beside it only while it stays unlocked (keyCache);
//   - recovery: enrolling again with a recovery token restores the escrowed
//     encryption-key history and issues a new signing key;
//   - the certificate directory (recipients' certificates with their
//     S/MIME capabilities, RFC 8551 §2.5.2) and the trust store;
//   - authentication of user calls against the upstream IMAP server
//     (RFC 9051 LOGIN), which stays the authority over mailbox passwords.
//
// # Key recovery offline
//
// Each escrowed encryption key is a DER CMS EnvelopedData whose content is
// the PKCS#8 private key, encrypted to the CA's key-recovery certificate
// (escrow.crt in the CA directory). The key-recovery private key
// (escrow.key) is meant to stay offline: a gateway operator can keep it off
// the machine and put it into the CA directory only while a recovery
// enrolment runs. Without any enrolment, an administrator recovers a key by
// hand.
//
// First, export the envelopes from the running gateway: admin API
// GET /api/v1/identities/{email}/escrow (admin bearer only; the envelopes
// are of no use without escrow.key), or the CLI, which writes one FILE.der
// per encryption key with its certificate as FILE.crt (mode 0600, never
// overwriting an earlier export):
//
//	smimeproxy admin -config smimeproxy.toml ids escrow alice@example.org -out export/
//
// Then, on the machine that holds escrow.crt and escrow.key, open each
// envelope and check that the key is the certificate's (the last two
// commands print the same public key):
//
//	openssl cms -decrypt -inform DER -in export/FILE.der \
//	    -recip escrow.crt -inkey escrow.key -binary -out key.der
//	openssl pkey -inform DER -in key.der -out key.pem
//	openssl pkey -in key.pem -pubout
//	openssl x509 -in export/FILE.crt -noout -pubkey
//
// Finally hand the key to its user, e.g. as PKCS#12, and delete key.der and
// key.pem:
//
//	openssl pkcs12 -export -inkey key.pem -in export/FILE.crt -out alice.p12
//
// Every export is recorded in the audit log ("escrow.export").
package identity
