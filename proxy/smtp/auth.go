package smtp

import (
	"context"
	"errors"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"smimeproxy/identity"
)

// AuthMechanisms implements serverSession. Both mechanisms carry the
// password, which is handed to the upstream and then forgotten.
func (s *session) AuthMechanisms() []string {
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements serverSession.
func (s *session) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(authzid, user, password string) error {
			if authzid != "" && authzid != user {
				return errAuthzid
			}
			return s.login(user, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: s.login}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

// login checks the credentials by logging in to the upstream with them; the
// upstream connection then carries this session's mail.
func (s *session) login(user, password string) error {
	if s.up != nil {
		return reply(503, "5.5.1", "Already authenticated")
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	c, err := s.p.authUpstream(ctx, user, password)
	if err != nil {
		if errors.Is(err, errUpstreamAuth) {
			s.log.Info("login refused by upstream", "user", user)
			return errAuthFailed
		}
		s.log.Warn("login not checked: upstream unavailable", "user", user, "err", err)
		return errUpstreamUnavailable(s.id)
	}
	s.up = c
	s.user = user
	if addr, err := identity.NormalizeEmail(user); err == nil {
		s.mailbox = addr
	}
	s.log = s.log.With("user", user)
	s.log.Info("logged in")
	return nil
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl does not provide: it asks for
// the user name, then the password, each base64 in a 334 challenge.
type loginServer struct {
	check func(user, password string) error
	user  string
	step  int
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(response) == 0 {
			return []byte("Username:"), false, nil
		}
		// An initial response carries the user name.
		l.user = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 1:
		l.user = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		if err := l.check(l.user, string(response)); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	return nil, false, reply(503, "5.5.1", "Authentication exchange out of order")
}
