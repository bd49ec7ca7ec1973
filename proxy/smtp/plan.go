package smtp

import (
	"crypto/x509"
	"errors"
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
	"smimeproxy/policy"
)

// plan is what to send: the policy's envelopes, the certificates they are
// encrypted to and the key that signs them.
type plan struct {
	envs  []policy.Envelope
	certs map[string]*x509.Certificate // lower-case address → encryption certificate
	sign  *smime.SignOptions           // nil when no envelope is signed
}

// plan looks up the sender's Digital ID and every recipient's certificate,
// asks the policy, and turns a refusal into the reply for the client.
func (s *session) plan(m *message) (*plan, *gosmtp.SMTPError) {
	ctx := s.ctx
	pol := s.p.opts.Policy
	keys := s.p.opts.Keys
	pl := &plan{certs: map[string]*x509.Certificate{}}
	sender := policy.Sender{Address: s.mailbox, FromMatches: m.fromMatches(s.mailbox)}
	if s.mailbox == "" {
		sender.Address = s.user
	}

	var signOpts *smime.SignOptions
	pending := false
	if pol.Sign != policy.Never && s.mailbox != "" {
		cert, key, chain, enc, err := keys.SigningKey(ctx, s.mailbox)
		switch {
		case err == nil:
			sender.HasID, sender.Unlocked = true, true
			signOpts = &smime.SignOptions{Cert: cert, Key: key, Chain: chain, EncryptionCert: enc}
			if enc != nil {
				pl.certs[s.mailbox] = enc
			}
		case errors.Is(err, identity.ErrLocked):
			sender.HasID = true
		case errors.Is(err, identity.ErrPendingTrust):
			pending = true
		case errors.Is(err, identity.ErrNoIdentity):
		default:
			s.log.Error("signing key lookup failed", "err", err)
			return nil, errInternal(s.id)
		}
	}
	if pol.Encrypt != policy.Never && s.mailbox != "" {
		// The sender's own certificate: the copy it can read, and its
		// capabilities. Public, so it is known even while the ID is locked.
		rc, err := s.p.certs.RecipientCertificate(ctx, s.mailbox, s.mailbox)
		switch {
		case err == nil:
			sender.Caps = capsOf(rc)
			if pl.certs[s.mailbox] == nil {
				pl.certs[s.mailbox] = rc.Cert
			}
			if pol.Sign == policy.Never {
				sender.HasID = true
			}
		case errors.Is(err, identity.ErrNoCertificate):
		default:
			s.log.Error("sender certificate lookup failed", "err", err)
			return nil, errInternal(s.id)
		}
	}

	rcpts := make([]policy.Recipient, 0, len(s.rcpts))
	for _, addr := range s.rcpts {
		key := strings.ToLower(addr)
		r := policy.Recipient{Address: addr, Bcc: !m.visible[key]}
		if pol.Encrypt != policy.Never {
			rc, err := s.p.certs.RecipientCertificate(ctx, s.mailbox, key)
			switch {
			case err == nil && rc != nil && rc.Cert != nil:
				r.HasCert, r.Caps = true, capsOf(rc)
				pl.certs[key] = rc.Cert
			case err == nil || errors.Is(err, identity.ErrNoCertificate):
			default:
				s.log.Error("recipient certificate lookup failed", "rcpt", addr, "err", err)
				return nil, errInternal(s.id)
			}
		}
		rcpts = append(rcpts, r)
	}

	d := policy.Decide(pol, sender, rcpts)
	if d.Refusal != nil {
		return nil, s.refusal(d.Refusal, pending)
	}
	pl.envs = d.Envelopes
	for _, e := range pl.envs {
		if e.Sign {
			pl.sign = signOpts
		}
	}
	if pl.sign == nil {
		for _, e := range pl.envs {
			if e.Sign {
				s.log.Error("policy wants a signature but no key is at hand")
				return nil, errInternal(s.id)
			}
		}
	}
	return pl, nil
}

// refusal turns the policy's refusal into the reply: locked and missing
// Digital IDs give a temporary 451 4.7.0 with the page to fix it, so the
// client keeps the message and retries.
func (s *session) refusal(r *policy.Refusal, pending bool) *gosmtp.SMTPError {
	s.log.Info("message refused by policy", "code", r.Code, "reason", r.Reason, "recipients", r.Recipients)
	switch {
	case errors.Is(r, policy.ErrLocked):
		return reply(451, "4.7.0", "Your Digital ID is locked: unlock it at %s and send again (session %s)",
			s.p.opts.UnlockURL(s.mailbox), s.id)
	case errors.Is(r, policy.ErrNoDigitalID) && pending:
		return reply(451, "4.7.0", "Your Digital ID waits for you to accept its issuing root: do so at %s and send again (session %s)",
			s.p.opts.EnrollURL(s.mailbox), s.id)
	case errors.Is(r, policy.ErrNoDigitalID):
		return reply(451, "4.7.0", "Signing is required but %s has no Digital ID: enrol at %s and send again (session %s)",
			s.mailboxOrUser(), s.p.opts.EnrollURL(s.mailbox), s.id)
	}
	return reply(r.Code, r.Enhanced, "%s (session %s)", r.Reason, s.id)
}

func (s *session) mailboxOrUser() string {
	if s.mailbox != "" {
		return s.mailbox
	}
	return s.user
}

func capsOf(rc *identity.Recipient) policy.Capabilities {
	if rc == nil {
		return policy.Capabilities{}
	}
	return policy.Capabilities{AESGCM: smime.SupportsGCM(rc.Capabilities), RSAOAEP: smime.SupportsOAEP(rc.Capabilities)}
}
