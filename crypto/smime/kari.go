package smime

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"math/big"

	// The KDF hashes are looked up through crypto.Hash.
	_ "crypto/sha1"
	_ "crypto/sha256"
	_ "crypto/sha512"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// KeyAgreeRecipientInfo with ephemeral-static ECDH (RFC 5753 §3.1): the
// sender's ephemeral public key goes in originatorKey, the shared secret is
// stretched with the ANSI X9.63 KDF over ECC-CMS-SharedInfo, and the result
// wraps the content key with AES Key Wrap sized to the content cipher.

// outboundECDHScheme is what we send; OpenSSL, gpgsm and Outlook read it.
var outboundECDHScheme = oidECDHStdSHA256KDF

var tagImplicit1 = cbasn1.Tag(1).ContextSpecific().Constructed() // [1] IMPLICIT SEQUENCE

// ecdhPublicKey returns the ECDH form of a certificate's EC key.
func ecdhPublicKey(cert *x509.Certificate) (*ecdh.PublicKey, error) {
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s has a %T key", ErrUnsupportedAlgorithm, cert.Subject, cert.PublicKey)
	}
	k, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnsupportedAlgorithm, cert.Subject, err)
	}
	return k, nil
}

// buildKARI agrees a key with an EC recipient and wraps cek under it.
func buildKARI(r Recipient, pub *ecdh.PublicKey, cek []byte, wantSKI bool) ([]byte, error) {
	eph, err := pub.Curve().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	z, err := eph.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("ECDH with %s: %w", r.Cert.Subject, err)
	}
	wrapAlg := algorithmID(wrapOIDFor(len(cek)))
	kekLen, _ := wrapKeyLen(wrapOIDFor(len(cek)))
	kek := x963KDF(crypto.SHA256, z, sharedInfo(wrapAlg, nil, kekLen), kekLen)
	wrapped, err := aesKeyWrap(kek, cek)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(tagImplicit1, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
			b.AddASN1(tagImplicit1, func(b *cryptobyte.Builder) { // originatorKey
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidKeyECPublicKey) })
				b.AddASN1BitString(eph.PublicKey().Bytes())
			})
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(outboundECDHScheme)
			b.AddBytes(wrapAlg)
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				addRecipientID(b, r.Cert, useSKI(r.Cert, wantSKI), tagExplicit0)
				b.AddASN1OctetString(wrapped)
			})
		})
	})
	return b.Bytes()
}

// algorithmID encodes AlgorithmIdentifier{oid} with absent parameters.
func algorithmID(oid asn1.ObjectIdentifier) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oid) })
	return b.BytesOrPanic()
}

// sharedInfo encodes ECC-CMS-SharedInfo (RFC 5753 §7.2). wrapAlg is the
// key-wrap AlgorithmIdentifier exactly as it appears in the message.
func sharedInfo(wrapAlg, ukm []byte, kekLen int) []byte {
	var bits [4]byte
	binary.BigEndian.PutUint32(bits[:], uint32(kekLen*8))
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(wrapAlg)
		if ukm != nil {
			b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) { b.AddASN1OctetString(ukm) })
		}
		b.AddASN1(tagExplicit2, func(b *cryptobyte.Builder) { b.AddASN1OctetString(bits[:]) })
	})
	return b.BytesOrPanic()
}

// x963KDF is the ANSI X9.63 KDF (SEC 1 §3.6.1): Hash(Z || counter || info).
func x963KDF(h crypto.Hash, z, info []byte, n int) []byte {
	out := make([]byte, 0, n+h.Size())
	var ctr [4]byte
	for i := uint32(1); len(out) < n; i++ {
		binary.BigEndian.PutUint32(ctr[:], i)
		d := h.New()
		d.Write(z)
		d.Write(ctr[:])
		d.Write(info)
		out = d.Sum(out)
	}
	return out[:n]
}

// kari is a parsed KeyAgreeRecipientInfo.
type kari struct {
	originator []byte // ephemeral public point
	ukm        []byte
	scheme     asn1.ObjectIdentifier
	wrapAlg    []byte // key-wrap AlgorithmIdentifier element
	wrapOID    asn1.ObjectIdentifier
	keys       []recipientEncryptedKey
}

type recipientEncryptedKey struct {
	issuer []byte
	serial *big.Int
	ski    []byte
	encKey []byte
}

func parseKARI(ri cryptobyte.String) (*kari, error) {
	bad := func(what string) error { return fmt.Errorf("%w: KeyAgreeRecipientInfo: %s", ErrMalformed, what) }
	var seq, orig, origKey, alg, wrap, reks cryptobyte.String
	var version int
	k := &kari{}
	if !ri.ReadASN1(&seq, tagImplicit1) || !seq.ReadASN1Integer(&version) || version != 3 {
		return nil, bad("header")
	}
	if !seq.ReadASN1(&orig, tagExplicit0) {
		return nil, bad("originator")
	}
	if !orig.PeekASN1Tag(tagImplicit1) {
		return nil, fmt.Errorf("%w: key agreement with a static originator key", ErrUnsupportedAlgorithm)
	}
	var origAlg cryptobyte.String
	if !orig.ReadASN1(&origKey, tagImplicit1) || !origKey.ReadASN1(&origAlg, cbasn1.SEQUENCE) ||
		!origKey.ReadASN1BitStringAsBytes(&k.originator) || !origKey.Empty() {
		return nil, bad("originatorKey")
	}
	if seq.PeekASN1Tag(tagExplicit1) {
		var ukm cryptobyte.String
		if !seq.ReadASN1(&ukm, tagExplicit1) || !ukm.ReadASN1Bytes(&k.ukm, cbasn1.OCTET_STRING) {
			return nil, bad("ukm")
		}
	}
	if !seq.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&k.scheme) ||
		!alg.ReadASN1Element(&wrap, cbasn1.SEQUENCE) {
		return nil, bad("keyEncryptionAlgorithm")
	}
	k.wrapAlg = wrap
	if !wrap.ReadASN1(&wrap, cbasn1.SEQUENCE) || !wrap.ReadASN1ObjectIdentifier(&k.wrapOID) {
		return nil, bad("key wrap algorithm")
	}
	if !seq.ReadASN1(&reks, cbasn1.SEQUENCE) || !seq.Empty() {
		return nil, bad("recipientEncryptedKeys")
	}
	for !reks.Empty() {
		var rek cryptobyte.String
		var r recipientEncryptedKey
		if !reks.ReadASN1(&rek, cbasn1.SEQUENCE) {
			return nil, bad("RecipientEncryptedKey")
		}
		if rek.PeekASN1Tag(tagExplicit0) {
			var rkid cryptobyte.String
			if !rek.ReadASN1(&rkid, tagExplicit0) || !rkid.ReadASN1Bytes(&r.ski, cbasn1.OCTET_STRING) {
				return nil, bad("rKeyId")
			}
		} else if err := readIssuerAndSerial(&rek, &r.issuer, &r.serial); err != nil {
			return nil, err
		}
		if !rek.ReadASN1Bytes(&r.encKey, cbasn1.OCTET_STRING) || !rek.Empty() {
			return nil, bad("encryptedKey")
		}
		k.keys = append(k.keys, r)
	}
	return k, nil
}

// ecdhKeyOf adapts the private key types we accept to ECDHKey.
func ecdhKeyOf(key crypto.PrivateKey) (ECDHKey, bool) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		ek, err := k.ECDH()
		if err != nil {
			return nil, false
		}
		return ek, true
	case ECDHKey:
		return k, true
	}
	return nil, false
}

// curveOf finds the curve of an ECDHKey's public half.
func curveOf(key ECDHKey) (ecdh.Curve, error) {
	switch pub := key.Public().(type) {
	case *ecdh.PublicKey:
		return pub.Curve(), nil
	case *ecdsa.PublicKey:
		k, err := pub.ECDH()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, err)
		}
		return k.Curve(), nil
	}
	return nil, fmt.Errorf("%w: ECDH key with public key %T", ErrUnsupportedAlgorithm, key.Public())
}

// unwrapKARI recovers the content key for encKey with our EC key.
func unwrapKARI(k *kari, encKey []byte, key ECDHKey, keyLen int) ([]byte, string, error) {
	hash, ok := ecdhSchemeHash(k.scheme)
	if !ok {
		return nil, "", fmt.Errorf("%w: key agreement %s", ErrUnsupportedAlgorithm, k.scheme)
	}
	kekLen, ok := wrapKeyLen(k.wrapOID)
	if !ok {
		return nil, "", fmt.Errorf("%w: key wrap %s", ErrUnsupportedAlgorithm, k.wrapOID)
	}
	curve, err := curveOf(key)
	if err != nil {
		return nil, "", err
	}
	peer, err := curve.NewPublicKey(k.originator)
	if err != nil {
		return nil, "", fmt.Errorf("%w: originator key is not a point on %v", ErrMalformed, curve)
	}
	z, err := key.ECDH(peer)
	if err != nil {
		return nil, "", ErrDecryptFailed
	}
	kek := x963KDF(hash, z, sharedInfo(k.wrapAlg, k.ukm, kekLen), kekLen)
	unwrap := aesKeyUnwrap
	if k.wrapOID.Equal(oidWrapDES3) {
		unwrap = des3KeyUnwrap
	}
	cek, err := unwrap(kek, encKey)
	if err != nil || len(cek) != keyLen {
		return nil, "", ErrDecryptFailed
	}
	return cek, "ecdh-" + hashName(hash) + "kdf", nil
}
