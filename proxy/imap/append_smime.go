package imap

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
)

// AppendTransform encrypts a message the client stores (in Sent or
// Drafts) to the user's own current encryption certificate, so the
// server never holds in clear what the user wrote; reading it back
// through the proxy decrypts it. AES-256-GCM (AuthEnvelopedData, RFC 5083)
// is used: only the user's own proxy reads it, and the content is
// integrity-protected. Messages already S/MIME at their top level pass
// unchanged, as do messages of a mailbox without a Digital ID (there is
// nothing to encrypt to). Status fields reserved for the proxy are
// dropped first: a draft made from a message read through the proxy
// would otherwise carry the old statement. A locked Digital ID gives an
// error wrapping identity.ErrLocked. It has the signature of
// AppendTransformFunc.
func (v *SMIMEViewer) AppendTransform(ctx context.Context, user, mailbox string, raw []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if isTopSMIME(smime.Classify(topContentType(raw))) {
		return raw, nil
	}
	keys, err := v.keys.DecryptionKeys(ctx, user)
	switch {
	case errors.Is(err, identity.ErrNoIdentity) || errors.Is(err, identity.ErrBadEmail):
		return raw, nil
	case err != nil:
		return nil, fmt.Errorf("append to %s: %w", mailbox, err)
	case len(keys) == 0 || keys[0].Cert == nil:
		return nil, fmt.Errorf("append to %s: the Digital ID has no encryption certificate", mailbox)
	}
	var out bytes.Buffer
	out.Grow(len(raw)*4/3 + 4096)
	rcpt := []smime.Recipient{{Cert: keys[0].Cert}}
	if err := smime.Encrypt(&out, StripStatus(raw), rcpt, smime.EncryptOptions{Cipher: smime.AES256GCM}); err != nil {
		return nil, fmt.Errorf("append to %s: encrypt: %w", mailbox, err)
	}
	return out.Bytes(), nil
}

var _ AppendTransformFunc = (*SMIMEViewer)(nil).AppendTransform
