// Package legacy reads private keys and certificates from the files
// people bring from older mail clients and external CAs, recognised by
// content, not by name:
//
//   - PKCS#12 / PFX (RFC 7292) as OpenSSL 3 writes it by default (PBES2,
//     PBKDF2-HMAC-SHA-256, AES-256-CBC, HMAC-SHA-256 MAC) and as Outlook,
//     old Windows, Netscape and "openssl pkcs12 -legacy" write it
//     (pbeWithSHAAnd3-KeyTripleDES-CBC keys, pbeWithSHAAnd40BitRC2-CBC
//     certificates, HMAC-SHA-1 MAC), with any number of keys and
//     certificates in any number of safes;
//   - PEM: PKCS#1 RSA, SEC1 EC, PKCS#8 (RFC 5208/5958), encrypted PKCS#8
//     (PBES2 of RFC 8018, or the PKCS#12 PBE schemes), OpenSSL's
//     "Proc-Type: 4,ENCRYPTED" keys, certificates and PKCS#7 bundles;
//   - DER: certificates, PKCS#8 (plain or encrypted), PKCS#1, SEC1 and
//     degenerate PKCS#7 SignedData (.p7b/.p7c) certificate bundles.
//
// RC2 (RFC 2268) is implemented here for decryption only. Nothing here
// writes keys; package crypto/seal stores what Read returns.
package legacy
