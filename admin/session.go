package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Cookie names of the web pages.
const (
	sessionCookie = "smimeproxy_session"
	csrfCookie    = "smimeproxy_csrf"
)

// sessions are page logins, kept in memory only: a restart logs everyone
// out, which is what a short-lived login should do anyway. The map is keyed
// by a hash of the cookie value, so the map alone lets nobody log in.
type sessions struct {
	clock Clock
	ttl   time.Duration
	mu    sync.Mutex
	byKey map[[sha256.Size]byte]session
}

type session struct {
	email   string
	expires time.Time
}

func newSessions(c Clock, ttl time.Duration) *sessions {
	return &sessions{clock: c, ttl: ttl, byKey: map[[sha256.Size]byte]session{}}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for email and returns the cookie value.
func (ss *sessions) create(email string) (string, time.Time) {
	id := randomToken()
	now := ss.clock.Now()
	exp := now.Add(ss.ttl)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, s := range ss.byKey {
		if !now.Before(s.expires) {
			delete(ss.byKey, k)
		}
	}
	ss.byKey[sha256.Sum256([]byte(id))] = session{email: email, expires: exp}
	return id, exp
}

// lookup returns the mailbox of a live session.
func (ss *sessions) lookup(id string) (string, bool) {
	if id == "" {
		return "", false
	}
	key := sha256.Sum256([]byte(id))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byKey[key]
	if !ok {
		return "", false
	}
	if !ss.clock.Now().Before(s.expires) {
		delete(ss.byKey, key)
		return "", false
	}
	return s.email, true
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byKey, sha256.Sum256([]byte(id)))
}

// secureCookies: cookies go over TLS only when the endpoint is reached
// over TLS (directly or behind a proxy named by an https public URL).
func (s *Server) secureCookies(r *http.Request) bool {
	return r.TLS != nil || s.public.Scheme == "https"
}

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteStrictMode,
	})
}

// sessionUser returns the logged-in mailbox of a page request.
func (s *Server) sessionUser(r *http.Request) (string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", false
	}
	return s.sessions.lookup(c.Value)
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request, email string) {
	id, _ := s.sessions.create(email)
	s.setCookie(w, r, sessionCookie, id, int(s.opts.SessionTTL/time.Second))
}

func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.end(c.Value)
	}
	s.setCookie(w, r, sessionCookie, "", -1)
}

// csrfToken returns the form token for this browser, giving it a CSRF
// cookie first when it has none (double submit, keyed by a server secret).
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
		return s.csrfFor(c.Value)
	}
	v := randomToken()
	s.setCookie(w, r, csrfCookie, v, 0)
	// A page rendered after a POST in the same request sees the new cookie.
	r.AddCookie(&http.Cookie{Name: csrfCookie, Value: v})
	return s.csrfFor(v)
}

// checkCSRF compares the form's token with the one the cookie gives.
func (s *Server) checkCSRF(r *http.Request) error {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) < 32 {
		return errBadCSRF
	}
	want := s.csrfFor(c.Value)
	if !hmac.Equal([]byte(want), []byte(r.PostFormValue("csrf"))) {
		return errBadCSRF
	}
	return nil
}
