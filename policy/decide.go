package policy

import (
	"fmt"
	"strings"
)

// Decide applies p to a message from s to rcpts. See the package comment
// for the rules. Recipients are deduplicated by address, case-insensitively;
// an address listed both as Bcc and visibly counts as visible.
//
// When several refusals apply, permanent ones win over the temporary
// "locked" one, so a client does not retry, unlock, and only then learn
// that the message can never be sent.
func Decide(p Policy, s Sender, rcpts []Recipient) Decision {
	if !p.Sign.Valid() || !p.Encrypt.Valid() {
		return refuse(451, "4.3.5", "the proxy's outbound policy is misconfigured; tell the administrator", nil, ErrMisconfigured)
	}
	rcpts = dedupe(rcpts)
	if len(rcpts) == 0 {
		return refuse(554, "5.5.1", "no recipients", nil, ErrNoRecipients)
	}

	sign, needUnlock, refusal := decideSign(p.Sign, s)
	if refusal != nil {
		return Decision{Refusal: refusal}
	}
	if p.Encrypt == Always {
		var missing []string
		for _, r := range rcpts {
			if !r.HasCert {
				missing = append(missing, r.Address)
			}
		}
		if len(missing) > 0 {
			return refuse(554, "5.7.1", fmt.Sprintf(
				"encryption is required but no certificate is known for %s; ask them for a signed message or remove them",
				nameList(missing)), missing, ErrRecipientsNoCert)
		}
	}
	if needUnlock {
		return refuse(451, "4.7.0", fmt.Sprintf(
			"the Digital ID of %s is locked; unlock it and send again", s.Address), nil, ErrLocked)
	}

	var enc, plain []Recipient
	var bccEnvs []Envelope
	for _, r := range rcpts {
		encrypt := p.Encrypt != Never && r.HasCert
		switch {
		case r.Bcc:
			bccEnvs = append(bccEnvs, envelope([]Recipient{r}, true, sign, encrypt, s))
		case encrypt:
			enc = append(enc, r)
		default:
			plain = append(plain, r)
		}
	}
	var envs []Envelope
	if len(enc) > 0 {
		envs = append(envs, envelope(enc, false, sign, true, s))
	}
	if len(plain) > 0 {
		envs = append(envs, envelope(plain, false, sign, false, s))
	}
	return Decision{Envelopes: append(envs, bccEnvs...)}
}

// decideSign reports whether the message is signed, whether that needs the
// locked key unlocked first, and any permanent refusal.
func decideSign(m Mode, s Sender) (sign, needUnlock bool, _ *Refusal) {
	switch m {
	case Never:
		return false, false, nil
	case WhenPossible:
		// "Possible" depends on facts the user cannot change in the next
		// minute (an ID exists, From is the mailbox), never on the lock:
		// a locked key must not make the message go out unsigned.
		if !s.HasID || !s.FromMatches {
			return false, false, nil
		}
		return true, !s.Unlocked, nil
	}
	if !s.HasID {
		return false, false, refuse(554, "5.7.1", fmt.Sprintf(
			"signing is required but %s has no Digital ID; enrol one first", s.Address), nil, ErrNoDigitalID).Refusal
	}
	if !s.FromMatches {
		return false, false, refuse(554, "5.7.1", fmt.Sprintf(
			"signing is required and only mail From %s can be signed; change the From address", s.Address), nil, ErrFromMismatch).Refusal
	}
	return true, !s.Unlocked, nil
}

func envelope(rs []Recipient, bcc, sign, encrypt bool, s Sender) Envelope {
	e := Envelope{Bcc: bcc, Sign: sign, Encrypt: encrypt}
	for _, r := range rs {
		e.Recipients = append(e.Recipients, r.Address)
	}
	if !encrypt {
		return e
	}
	gcm := true
	senderListed := false
	for _, r := range rs {
		e.KeyRecipients = append(e.KeyRecipients, KeyRecipient{Address: r.Address, OAEP: r.Caps.RSAOAEP})
		gcm = gcm && r.Caps.AESGCM
		senderListed = senderListed || strings.EqualFold(r.Address, s.Address)
	}
	if s.HasID && !senderListed {
		e.KeyRecipients = append(e.KeyRecipients, KeyRecipient{Address: s.Address, OAEP: s.Caps.RSAOAEP, Sender: true})
		gcm = gcm && s.Caps.AESGCM
	}
	e.Cipher = AES256CBC
	if gcm {
		e.Cipher = AES256GCM
	}
	return e
}

func dedupe(rcpts []Recipient) []Recipient {
	out := make([]Recipient, 0, len(rcpts))
	index := make(map[string]int, len(rcpts))
	for _, r := range rcpts {
		key := strings.ToLower(r.Address)
		if i, ok := index[key]; ok {
			out[i].Bcc = out[i].Bcc && r.Bcc
			continue
		}
		index[key] = len(out)
		out = append(out, r)
	}
	return out
}

func refuse(code int, enhanced, reason string, rcpts []string, err error) Decision {
	return Decision{Refusal: &Refusal{Code: code, Enhanced: enhanced, Reason: reason, Recipients: rcpts, err: err}}
}
