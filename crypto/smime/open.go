package smime

import (
	"fmt"
)

// Layer is one S/MIME wrapping that Open removed.
type Layer struct {
	Kind      Kind          // Signed, SignedOpaque, Enveloped or AuthEnveloped
	Verify    *VerifyResult // signature layers
	Decrypted *Decrypted    // encryption layers
}

// Opened is a message with its S/MIME layers removed.
type Opened struct {
	Header Header  // the outer header fields of the message
	Entity []byte  // the innermost entity, CRLF line ends
	Layers []Layer // outermost first; empty for a message that is not S/MIME
}

// Signature returns the innermost signature layer's result, the one that
// covers the content (RFC 8551 §3.7: in a triple wrap the inner signature
// signs the content, the outer one the envelope), or nil.
func (o *Opened) Signature() *VerifyResult {
	for i := len(o.Layers) - 1; i >= 0; i-- {
		if o.Layers[i].Verify != nil {
			return o.Layers[i].Verify
		}
	}
	return nil
}

// Encrypted reports whether any layer was encrypted.
func (o *Opened) Encrypted() bool {
	for _, l := range o.Layers {
		if l.Decrypted != nil {
			return true
		}
	}
	return false
}

// AllValid reports whether there is at least one signature layer and
// every signature layer is valid.
func (o *Opened) AllValid() bool {
	n := 0
	for _, l := range o.Layers {
		if l.Verify != nil {
			if !l.Verify.Valid {
				return false
			}
			n++
		}
	}
	return n > 0
}

// Open removes the S/MIME layers of a whole message in order, outermost
// first: signatures are verified with opts (the From address defaults to
// the outer From header), envelopes decrypted with keys, until the entity
// is neither signed nor encrypted. Only the top level of each layer is
// unwrapped — an encrypted or signed part inside a multipart stays as it
// is, so a message cannot smuggle someone else's ciphertext into a reply
// (EFAIL). More than MaxDepth layers give ErrTooDeep. A signature that
// does not verify is reported in its layer, not as an error; a layer that
// cannot be parsed or decrypted is an error.
func Open(msg []byte, keys []KeyPair, opts VerifyOptions) (*Opened, error) {
	outer, entity, err := SplitMessage(msg)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	from := opts.From
	if from == "" {
		from = outer.Get("From")
	}
	o := &Opened{Header: outer}
	for {
		e, err := parseTop(entity)
		if err != nil {
			return nil, fmt.Errorf("open: layer %d: %w", len(o.Layers)+1, err)
		}
		kind := entityKind(e)
		if kind != Signed && kind != SignedOpaque && kind != Enveloped && kind != AuthEnveloped {
			o.Entity = entity
			return o, nil
		}
		if len(o.Layers) >= MaxDepth {
			return nil, fmt.Errorf("open: %w: more than %d S/MIME layers", ErrTooDeep, MaxDepth)
		}
		layer := Layer{Kind: kind}
		switch kind {
		case Signed, SignedOpaque:
			layer.Verify, err = verifyEntity(entity, from, opts)
			if err == nil {
				entity = layer.Verify.Entity
			}
		default:
			layer.Decrypted, err = Decrypt(entity, keys)
			if err == nil {
				entity = layer.Decrypted.Entity
			}
		}
		if err != nil {
			return nil, fmt.Errorf("open: layer %d (%v): %w", len(o.Layers)+1, kind, err)
		}
		o.Layers = append(o.Layers, layer)
	}
}
