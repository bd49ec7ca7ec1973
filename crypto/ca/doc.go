// Package ca is smimeproxy's built-in certificate authority, the
// counterpart of the Exchange Key Management Server: it keeps a root key
// and certificate in a directory and issues the certificates a Digital ID
// needs (a signing and an encryption certificate, RFC 8550 / RFC 5280
// profiles with the emailProtection purpose and an rfc822Name
// subjectAltName), the TLS server certificate of the proxy's listeners,
// and a key-recovery certificate to which users' encryption keys are
// escrowed.
//
// # Files in the CA directory
//
// The directory is created 0700; private keys are written 0600 as PEM
// PKCS#8, certificates 0644 as PEM. Every file is written to a temporary
// name first and then linked or renamed into place, so a crash never
// leaves a half-written file and two processes starting at once agree on
// one root.
//
//	root.key, root.crt       the built-in root (absent with an operator's CA)
//	escrow.key, escrow.crt   the key-recovery (escrow) key and certificate
//	tls.key, tls.crt         the listeners' TLS server key and certificate
//
// The built-in root is RSA-3072 with SHA-256 signatures, not ECDSA:
// every client we serve, including gpgsm 2.2 and older Outlook/Windows
// certificate stores, verifies RSA chains, while ECDSA-signed chains still
// trip some of them. It is valid for ten years, CA:TRUE (critical),
// keyCertSign|cRLSign, with O=<org>, CN=<org> smimeproxy Root CA.
//
// # Offline key recovery
//
// Users' encryption keys are escrowed by package identity as CMS
// EnvelopedData (RFC 5652) encrypted to the certificate returned by
// [CA.EscrowCertificate] (RSA-3072, keyEncipherment, extended key usage
// Key Recovery Agent 1.3.6.1.4.1.311.21.6). Issuing certificates and
// escrowing keys need only escrow.crt; escrow.key is read only when a key
// is recovered. An administrator should therefore move escrow.key off the
// server (for example to an offline medium) once escrow.crt exists, and
// bring it back only while a user's recovery enrolment runs, or recover
// offline: save the escrow record as DER (escrowed.p7m) and run, on the
// machine holding the key:
//
//	openssl cms -decrypt -inform DER -in escrowed.p7m \
//	    -recip escrow.crt -inkey escrow.key -out recovered.key
//
// recovered.key is then the user's encryption private key as package
// identity escrowed it (PKCS#8). If escrow.key is absent but escrow.crt is
// present, [Open] keeps using escrow.crt; if escrow.crt is absent, Open
// certifies escrow.key when it is there and otherwise creates a new pair.
//
// # Operator's CA
//
// Instead of the built-in root, [Options.KeyFile] and [Options.CertFile]
// may name an existing CA's private key and certificate (PEM). The key
// must match the certificate, and the certificate must be a valid CA
// certificate allowed to sign certificates. Further certificates after
// the first in CertFile are taken as its chain towards a root.
package ca
