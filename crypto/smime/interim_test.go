package smime_test

import (
	"encoding/base64"
	"io"

	"smimeproxy/crypto/smime"
)

// encryptMsg and decryptMsg stand for smime.Encrypt and smime.Decrypt
// until those whole-message functions exist. (interim: not for main)
func encryptMsg(w io.Writer, msg []byte, to []smime.Recipient, opts smime.EncryptOptions) error {
	outer, entity, err := smime.SplitMessage(msg)
	if err != nil {
		return err
	}
	der, err := smime.EncryptEntity(entity, to, opts)
	if err != nil {
		return err
	}
	s := base64.StdEncoding.EncodeToString(der)
	b := []byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(s) > 76 {
		b = append(append(b, s[:76]...), '\r', '\n')
		s = s[76:]
	}
	b = append(append(b, s...), '\r', '\n')
	return smime.Compose(w, outer, b)
}

func decryptMsg(msg []byte, keys []smime.KeyPair) (*smime.Decrypted, error) {
	_, entity, err := smime.SplitMessage(msg)
	if err != nil {
		return nil, err
	}
	e, err := smime.ParseEntity(entity)
	if err != nil {
		return nil, err
	}
	if e.MediaType != "application/pkcs7-mime" {
		return nil, smime.ErrNotEncrypted
	}
	der, err := e.Body()
	if err != nil {
		return nil, err
	}
	return smime.DecryptDER(der, keys)
}
