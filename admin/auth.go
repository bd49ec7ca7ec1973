package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"smimeproxy/identity"
)

// handlerFunc is an API handler; its error becomes the JSON reply.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// userHandlerFunc is an API handler for a logged-in mailbox user.
type userHandlerFunc func(w http.ResponseWriter, r *http.Request, login string) error

// apiHandler requires JSON on posts and turns a handler's error into the
// JSON error reply.
func (s *Server) apiHandler(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || ct != "application/json" {
				s.fail(w, r, errNeedJSON)
				return
			}
		}
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// requireAdmin checks the bearer credential in constant time (both sides
// hashed first, so not even the length leaks).
func (s *Server) requireAdmin(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		auth := r.Header.Get("Authorization")
		scheme, cred, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
			return errNoBearer
		}
		if wait := s.logins.blocked(clientAddr(r)); wait > 0 {
			return &identity.RetryError{After: wait}
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
		if s.opts.AdminToken == "" || subtle.ConstantTimeCompare(got[:], s.bearer[:]) != 1 {
			s.logins.failed(clientAddr(r))
			return errBadBearer
		}
		return h(w, r)
	}
}

// requireUser checks the mailbox login (HTTP Basic) against the upstream.
func (s *Server) requireUser(h userHandlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		user, pw, ok := r.BasicAuth()
		if !ok || user == "" {
			return errNoLogin
		}
		login, err := s.login(r, user, identity.Secret(pw))
		if err != nil {
			return err
		}
		return h(w, r, login)
	}
}

// login checks a mailbox login, with a back-off per client address after
// failures, and returns the normalised address.
func (s *Server) login(r *http.Request, user string, pw identity.Secret) (string, error) {
	client := clientAddr(r)
	if wait := s.logins.blocked(client); wait > 0 {
		return "", &identity.RetryError{After: wait}
	}
	email, err := identity.NormalizeEmail(user)
	if err != nil {
		s.logins.failed(client)
		return "", identity.ErrAuthFailed
	}
	if err := s.opts.Auth.Authenticate(r.Context(), email, pw); err != nil {
		if errors.Is(err, identity.ErrAuthFailed) {
			s.logins.failed(client)
		}
		return "", err
	}
	s.logins.succeeded(client)
	return email, nil
}

// ownMailbox checks that the request's address is the login's own.
func ownMailbox(login, email string) (string, error) {
	norm, err := identity.NormalizeEmail(email)
	if err != nil {
		return "", err
	}
	if norm != login {
		return "", errOtherMailbox
	}
	return norm, nil
}

// decodeJSON reads one JSON object into v, refusing unknown fields and
// trailing data.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errTooLarge
		}
		return errBadJSON
	}
	if _, err := dec.Token(); err != io.EOF {
		return errBadJSON
	}
	return nil
}

// Login back-off: free tries, then a wait doubling per failure.
const (
	loginFreeFailures = 5
	loginBackoffBase  = time.Second
	loginBackoffMax   = 5 * time.Minute
	loginForgetAfter  = time.Hour
)

// loginLimiter slows down guessing of mail passwords and of the admin
// token through this endpoint, per client address.
type loginLimiter struct {
	clock Clock
	mu    sync.Mutex
	byIP  map[string]*loginFailures
}

type loginFailures struct {
	count int
	last  time.Time
	until time.Time
}

func newLoginLimiter(c Clock) *loginLimiter {
	return &loginLimiter{clock: c, byIP: map[string]*loginFailures{}}
}

func (l *loginLimiter) blocked(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.byIP[client]
	if f == nil {
		return 0
	}
	return max(f.until.Sub(l.clock.Now()), 0)
}

func (l *loginLimiter) failed(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	for ip, f := range l.byIP { // keep the map small
		if now.Sub(f.last) > loginForgetAfter {
			delete(l.byIP, ip)
		}
	}
	f := l.byIP[client]
	if f == nil {
		f = &loginFailures{}
		l.byIP[client] = f
	}
	f.count++
	f.last = now
	if n := f.count - loginFreeFailures; n > 0 {
		wait := loginBackoffBase << min(n-1, 20)
		f.until = now.Add(min(wait, loginBackoffMax))
	}
}

func (l *loginLimiter) succeeded(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byIP, client)
}
