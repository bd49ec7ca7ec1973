package smime

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// KeyTransRecipientInfo (RFC 5652 §6.2.1) with RSA PKCS#1 v1.5 or
// RSAES-OAEP (RFC 8017, parameters per RFC 4055 §4.1).

// useSKI reports whether a recipient is named by subjectKeyIdentifier:
// when asked for and the certificate has one.
func useSKI(cert *x509.Certificate, want bool) bool { return want && len(cert.SubjectKeyId) > 0 }

// addRecipientID writes a RecipientIdentifier: issuerAndSerialNumber, or
// [0] subjectKeyIdentifier when ski is set.
func addRecipientID(b *cryptobyte.Builder, cert *x509.Certificate, ski bool, skiTag cbasn1.Tag) {
	if ski {
		b.AddASN1(skiTag, func(b *cryptobyte.Builder) {
			if skiTag == tagImplicit0 {
				b.AddBytes(cert.SubjectKeyId)
				return
			}
			b.AddASN1OctetString(cert.SubjectKeyId) // RecipientKeyIdentifier (kari)
		})
		return
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(cert.RawIssuer)
		b.AddASN1BigInt(cert.SerialNumber)
	})
}

// addOAEPSHA256Params is RSAES-OAEP-params with SHA-256 for the hash and MGF1
// and the default (empty) label; hash parameters absent per RFC 5754.
func addOAEPSHA256Params(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidHashSHA256) })
		})
		b.AddASN1(tagExplicit1, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidMGF1)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidHashSHA256) })
			})
		})
	})
}

// buildKTRI encrypts cek to an RSA recipient and returns the RecipientInfo
// and its version (0 for issuerAndSerialNumber, 2 for subjectKeyIdentifier).
func buildKTRI(r Recipient, pub *rsa.PublicKey, cek []byte, wantSKI bool) ([]byte, int, error) {
	var enc []byte
	var err error
	if r.OAEP {
		enc, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, cek, nil)
	} else {
		//lint:ignore SA1019 PKCS#1 v1.5 key transport is what every S/MIME client reads; RFC 8551 §2.3 still requires it.
		enc, err = rsa.EncryptPKCS1v15(rand.Reader, pub, cek)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("encrypt content key to %s: %w", r.Cert.Subject, err)
	}
	var b cryptobyte.Builder
	ski := useSKI(r.Cert, wantSKI)
	version := 0
	if ski {
		version = 2
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(version))
		addRecipientID(b, r.Cert, ski, tagImplicit0)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			if r.OAEP {
				b.AddASN1ObjectIdentifier(oidKeyRSAOAEP)
				addOAEPSHA256Params(b)
			} else {
				b.AddASN1ObjectIdentifier(oidKeyRSA)
				b.AddASN1NULL()
			}
		})
		b.AddASN1OctetString(enc)
	})
	out, err := b.Bytes()
	return out, version, err
}

// ktri is a parsed KeyTransRecipientInfo.
type ktri struct {
	issuer []byte // raw Name, nil when ski is set
	serial *big.Int
	ski    []byte
	alg    asn1.ObjectIdentifier
	params []byte
	encKey []byte
}

func parseKTRI(ri cryptobyte.String) (*ktri, error) {
	var seq cryptobyte.String
	var version int
	k := &ktri{}
	if !ri.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Integer(&version) {
		return nil, fmt.Errorf("%w: bad KeyTransRecipientInfo", ErrMalformed)
	}
	if err := readRecipientID(&seq, &k.issuer, &k.serial, &k.ski); err != nil {
		return nil, err
	}
	var alg cryptobyte.String
	if !seq.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&k.alg) ||
		!seq.ReadASN1Bytes(&k.encKey, cbasn1.OCTET_STRING) || !seq.Empty() {
		return nil, fmt.Errorf("%w: bad KeyTransRecipientInfo", ErrMalformed)
	}
	k.params = alg
	return k, nil
}

// readRecipientID reads issuerAndSerialNumber or [0] subjectKeyIdentifier.
func readRecipientID(s *cryptobyte.String, issuer *[]byte, serial **big.Int, ski *[]byte) error {
	if s.PeekASN1Tag(tagImplicit0) {
		if !s.ReadASN1Bytes(ski, tagImplicit0) {
			return fmt.Errorf("%w: bad subjectKeyIdentifier", ErrMalformed)
		}
		return nil
	}
	return readIssuerAndSerial(s, issuer, serial)
}

func readIssuerAndSerial(s *cryptobyte.String, issuer *[]byte, serial **big.Int) error {
	var ias, name cryptobyte.String
	n := new(big.Int)
	if !s.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&name, cbasn1.SEQUENCE) ||
		!ias.ReadASN1Integer(n) || !ias.Empty() {
		return fmt.Errorf("%w: bad issuerAndSerialNumber", ErrMalformed)
	}
	*issuer, *serial = name, n
	return nil
}

// oaepHashes reads RSAES-OAEP-params; absent fields take the RFC 8017
// defaults (SHA-1, MGF1-SHA-1, empty label), which is what OpenSSL sends
// unless told otherwise.
func oaepHashes(params []byte) (hash, mgfHash crypto.Hash, label []byte, err error) {
	hash, mgfHash = crypto.SHA1, crypto.SHA1
	p := cryptobyte.String(params)
	if p.Empty() {
		return hash, mgfHash, nil, nil
	}
	bad := fmt.Errorf("%w: bad RSAES-OAEP parameters", ErrMalformed)
	var seq cryptobyte.String
	if !p.ReadASN1(&seq, cbasn1.SEQUENCE) || !p.Empty() {
		return 0, 0, nil, bad
	}
	var field cryptobyte.String
	var present bool
	if !seq.ReadOptionalASN1(&field, &present, tagExplicit0) {
		return 0, 0, nil, bad
	}
	if present {
		if hash, err = readHashAlgID(&field); err != nil {
			return 0, 0, nil, err
		}
	}
	if !seq.ReadOptionalASN1(&field, &present, tagExplicit1) {
		return 0, 0, nil, bad
	}
	if present {
		var mgf cryptobyte.String
		var mgfOID asn1.ObjectIdentifier
		if !field.ReadASN1(&mgf, cbasn1.SEQUENCE) || !mgf.ReadASN1ObjectIdentifier(&mgfOID) {
			return 0, 0, nil, bad
		}
		if !mgfOID.Equal(oidMGF1) {
			return 0, 0, nil, fmt.Errorf("%w: OAEP mask generation %s", ErrUnsupportedAlgorithm, mgfOID)
		}
		if mgfHash, err = readHashAlgID(&mgf); err != nil {
			return 0, 0, nil, err
		}
	}
	if !seq.ReadOptionalASN1(&field, &present, tagExplicit2) {
		return 0, 0, nil, bad
	}
	if present {
		var ps cryptobyte.String
		var psOID asn1.ObjectIdentifier
		if !field.ReadASN1(&ps, cbasn1.SEQUENCE) || !ps.ReadASN1ObjectIdentifier(&psOID) ||
			!psOID.Equal(oidPSpecified) || !ps.ReadASN1Bytes(&label, cbasn1.OCTET_STRING) {
			return 0, 0, nil, fmt.Errorf("%w: OAEP pSourceAlgorithm", ErrUnsupportedAlgorithm)
		}
	}
	return hash, mgfHash, label, nil
}

// readHashAlgID reads AlgorithmIdentifier{hash, NULL or absent}.
func readHashAlgID(s *cryptobyte.String) (crypto.Hash, error) {
	var alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return 0, fmt.Errorf("%w: bad hash AlgorithmIdentifier", ErrMalformed)
	}
	h, ok := hashByOID(oid)
	if !ok {
		return 0, fmt.Errorf("%w: hash %s", ErrUnsupportedAlgorithm, oid)
	}
	return h, nil
}

// unwrapKTRI recovers the content key with the recipient's RSA key. Any
// failure of the RSA step (padding, wrong key, a Decrypter that returns an
// error) yields a random key of the expected length instead of an error:
// the caller then fails at content decryption with ErrDecryptFailed, so the
// outcome of the RSA step is not observable (Bleichenbacher, Manger).
func unwrapKTRI(k *ktri, key crypto.Decrypter, keyLen int) ([]byte, string, error) {
	var opts crypto.DecrypterOpts
	var name string
	switch {
	case k.alg.Equal(oidKeyRSA):
		//lint:ignore SA1019 inbound PKCS#1 v1.5 is what most S/MIME mail uses; SessionKeyLen makes padding failures yield a random key in constant time.
		opts, name = &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keyLen}, "rsa-pkcs1v15"
	case k.alg.Equal(oidKeyRSAOAEP):
		hash, mgfHash, label, err := oaepHashes(k.params)
		if err != nil {
			return nil, "", err
		}
		opts, name = &rsa.OAEPOptions{Hash: hash, MGFHash: mgfHash, Label: label}, "rsa-oaep-"+hashName(hash)
	default:
		return nil, "", fmt.Errorf("%w: key transport %s", ErrUnsupportedAlgorithm, k.alg)
	}
	cek := make([]byte, keyLen)
	if _, err := rand.Read(cek); err != nil {
		return nil, "", err
	}
	out, err := key.Decrypt(rand.Reader, k.encKey, opts)
	if err == nil && len(out) == keyLen {
		copy(cek, out)
	}
	return cek, name, nil
}

func hashName(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "sha1"
	case crypto.SHA224:
		return "sha224"
	case crypto.SHA256:
		return "sha256"
	case crypto.SHA384:
		return "sha384"
	case crypto.SHA512:
		return "sha512"
	}
	return h.String()
}
