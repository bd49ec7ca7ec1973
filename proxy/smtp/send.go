package smtp

import (
	"io"
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"smimeproxy/crypto/smime"
	"smimeproxy/policy"
)

// deliver hands every envelope of pl to the upstream and answers the client.
//
// One envelope covering every recipient goes out in the transaction the
// client's MAIL and RCPT commands opened upstream. Several envelopes: that
// transaction is reset and each envelope is replayed as MAIL, RCPT… and
// DATA (or BDAT) of its own. Each copy is built (signed, encrypted) before
// its transfer starts, so a local failure never leaves a half-written
// message upstream.
//
// The client gets 250 only when the upstream accepted every envelope. When
// none was accepted, it gets the upstream's reply (or a fixed one). When some
// were accepted and others not, it gets 554 5.3.0 naming who got the message
// and who did not: a 4xx would make the client send everything again, and
// the recipients who already have it would get it twice.
func (s *session) deliver(m *message, pl *plan) error {
	signed, rerr := s.sign(m, pl)
	if rerr != nil {
		return rerr
	}
	single := len(pl.envs) == 1
	if !single {
		if err := s.up.Reset(s.ctx); err != nil {
			s.inTx = false
			return s.upstreamErr("RSET", err)
		}
		s.inTx = false
	}

	var sent, unsent []string
	var first *gosmtp.SMTPError
	for i, env := range pl.envs {
		if s.broken {
			unsent = append(unsent, env.Recipients...)
			continue
		}
		r := s.sendEnvelope(m, pl, env, signed, !single)
		if r == nil {
			sent = append(sent, env.Recipients...)
			s.log.Info("envelope accepted", "n", i+1, "of", len(pl.envs), "recipients", len(env.Recipients),
				"signed", env.Sign, "encrypted", env.Encrypt, "cipher", env.Cipher, "bcc", env.Bcc)
			continue
		}
		unsent = append(unsent, env.Recipients...)
		if first == nil {
			first = r
		}
	}
	s.inTx = !s.broken && first != nil // let Reset clean up upstream
	switch {
	case first == nil:
		return nil
	case len(sent) == 0:
		return first
	}
	s.log.Warn("message partly sent", "sent", len(sent), "unsent", len(unsent), "reply", first.Message)
	return reply(554, "5.3.0", "Partly sent: delivered to %s but NOT to %s (%d %s); send it again to those only (session %s)",
		nameList(sent), nameList(unsent), first.Code, first.Message, s.id)
}

// sign signs the message once for every envelope that is signed (nil when
// none is): the signed entity keeps the canonical content and the signature
// and writes itself into each copy, so Bcc copies share one signature. The
// build steps, sign and buildCopy, are apart from sending so that the
// benchmark's crypto ceiling times exactly this work.
func (s *session) sign(m *message, pl *plan) (*smime.SignedEntity, *gosmtp.SMTPError) {
	if pl.sign == nil {
		return nil, nil
	}
	signed, err := smime.NewSignedEntity(m.entity, *pl.sign)
	if err != nil {
		s.log.Error("signing failed", "err", err)
		return nil, errInternal(s.id)
	}
	return signed, nil
}

// buildCopy returns the entity of env's copy: the signed entity, the plain
// entity made 7-bit, or an envelope around either. Everything that can fail
// locally (recipient keys, key transport) happens here, before the transfer
// starts; the envelope then encrypts while it is written (AES-CBC in small
// chunks, nothing of the message's size held), so writeCopy can only fail
// on the connection.
func (s *session) buildCopy(m *message, pl *plan, env policy.Envelope, signed *smime.SignedEntity) (smime.Content, *gosmtp.SMTPError) {
	var body smime.Content = smime.EntityBytes(m.entity)
	if env.Sign {
		body = signed
	} else if !env.Encrypt && !is7Bit(m.entity) {
		// Unsigned plain copy: 8-bit parts are re-encoded as for signing,
		// so the copy is 7-bit like every other one and BODY=8BITMIME is
		// never needed upstream (RFC 6152 allows the conversion).
		b, err := smime.Canonicalize(m.entity)
		if err != nil {
			s.log.Error("7-bit conversion failed", "err", err)
			return nil, errInternal(s.id)
		}
		body = smime.EntityBytes(b)
	}
	if !env.Encrypt {
		return body, nil
	}
	to := make([]smime.Recipient, 0, len(env.KeyRecipients))
	for _, kr := range env.KeyRecipients {
		c := pl.certs[strings.ToLower(kr.Address)]
		if c == nil {
			if kr.Sender {
				s.log.Warn("sender's encryption certificate unknown; no copy for the sender")
				continue
			}
			s.log.Error("no certificate for key recipient", "rcpt", kr.Address)
			return nil, errInternal(s.id)
		}
		to = append(to, smime.Recipient{Cert: c, OAEP: kr.OAEP})
	}
	cipher := smime.AES256CBC
	if env.Cipher == policy.AES256GCM {
		cipher = smime.AES256GCM
	}
	e, err := smime.NewEnvelope(body, to, smime.EncryptOptions{Cipher: cipher})
	if err != nil {
		s.log.Error("encryption failed", "err", err)
		return nil, errInternal(s.id)
	}
	return e, nil
}

// sendEnvelope builds one copy and sends it; replay opens a transaction of
// its own for it.
func (s *session) sendEnvelope(m *message, pl *plan, env policy.Envelope, signed *smime.SignedEntity, replay bool) *gosmtp.SMTPError {
	body, rerr := s.buildCopy(m, pl, env, signed)
	if rerr != nil {
		return rerr
	}
	if replay {
		if err := s.up.Mail(s.ctx, s.from, mailOptions{UTF8: s.mailOpts.UTF8}); err != nil {
			return s.upstreamErr("MAIL", err)
		}
		s.inTx = true
		for _, rc := range env.Recipients {
			if err := s.up.Rcpt(s.ctx, rc); err != nil {
				r := s.upstreamErr("RCPT", err)
				s.abortTx()
				return r
			}
		}
	}
	err := s.up.Send(s.ctx, func(w io.Writer) error { return writeCopy(w, m, body) })
	if err != nil {
		r := s.upstreamErr("message", err)
		s.abortTx()
		return r
	}
	s.inTx = false
	return nil
}

// abortTx ends the upstream transaction of a failed envelope with RSET
// when the connection still works. Unlike resetTx it keeps the client's
// envelope, which the envelopes still to send are replayed from.
func (s *session) abortTx() {
	if s.inTx && !s.broken {
		if err := s.up.Reset(s.ctx); err != nil {
			s.broken = true
			s.log.Warn("upstream RSET failed", "err", err)
		}
	}
	s.inTx = false
}

// writeCopy writes the outer header fields (Bcc removed) and the copy's
// entity.
func writeCopy(w io.Writer, m *message, body smime.Content) error {
	return smime.ComposeContent(w, m.outer, body)
}

// is7Bit reports whether b has no byte above 127.
func is7Bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
