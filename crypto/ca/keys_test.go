package ca

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
)

func ed25519GenerateKey() (crypto.PublicKey, crypto.Signer, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	return pub, priv, err
}
