package smime

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
)

// digestHash maps a digestAlgorithm OID to its hash and display name.
func digestHash(oid asn1.ObjectIdentifier) (crypto.Hash, string, bool) {
	switch {
	case oid.Equal(oidSigSHA256):
		return crypto.SHA256, "SHA-256", true
	case oid.Equal(oidSigSHA384):
		return crypto.SHA384, "SHA-384", true
	case oid.Equal(oidSigSHA512):
		return crypto.SHA512, "SHA-512", true
	case oid.Equal(oidSigSHA224):
		return crypto.SHA224, "SHA-224", true
	case oid.Equal(oidSigSHA1):
		return crypto.SHA1, "SHA-1", true
	case oid.Equal(oidSigMD5):
		return crypto.MD5, "MD5", true
	}
	return 0, "", false
}

// checkSignatureValue checks sig over signed with the certificate's key.
// It uses crypto/rsa and crypto/ecdsa directly rather than
// x509.CheckSignature, which refuses SHA-1 outright: such signatures are
// verified and flagged weak instead.
func checkSignatureValue(cert *x509.Certificate, alg algID, hash crypto.Hash, signed, sig []byte) error {
	h := hash.New()
	h.Write(signed)
	hashed := h.Sum(nil)
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		switch {
		case alg.Algorithm.Equal(oidSigRSAPSS):
			return rsa.VerifyPSS(pub, pssHash(alg, hash), hashed, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		case alg.Algorithm.Equal(oidSigRSA), alg.Algorithm.Equal(oidSigRSASHA1), alg.Algorithm.Equal(oidSigRSASHA256),
			alg.Algorithm.Equal(oidSigRSASHA384), alg.Algorithm.Equal(oidSigRSASHA512), alg.Algorithm.Equal(oidSigRSASHA224),
			alg.Algorithm.Equal(oidSigRSAMD5):
			return rsa.VerifyPKCS1v15(pub, hash, hashed, sig)
		}
	case *ecdsa.PublicKey:
		switch {
		case alg.Algorithm.Equal(oidSigECPublic), alg.Algorithm.Equal(oidSigECDSASHA1), alg.Algorithm.Equal(oidSigECDSA224),
			alg.Algorithm.Equal(oidSigECDSA256), alg.Algorithm.Equal(oidSigECDSA384), alg.Algorithm.Equal(oidSigECDSA512):
			if !ecdsa.VerifyASN1(pub, hashed, sig) {
				return errors.New("ECDSA verification failure")
			}
			return nil
		}
	default:
		return fmt.Errorf("unsupported public key type %T", cert.PublicKey)
	}
	return fmt.Errorf("signature algorithm %v does not fit a %T", alg.Algorithm, cert.PublicKey)
}

// pssHash reads the hash of RSASSA-PSS-params; absent means SHA-1 (RFC 4055).
func pssHash(alg algID, fallback crypto.Hash) crypto.Hash {
	var p struct {
		Hash algID `asn1:"explicit,optional,tag:0"`
	}
	if len(alg.Parameters.FullBytes) == 0 {
		return crypto.SHA1
	}
	if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &p); err != nil {
		return fallback
	}
	if len(p.Hash.Algorithm) == 0 {
		return crypto.SHA1
	}
	if h, _, ok := digestHash(p.Hash.Algorithm); ok {
		return h
	}
	return fallback
}
