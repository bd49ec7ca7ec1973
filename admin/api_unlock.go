package admin

import (
	"net/http"
	"time"

	"smimeproxy/identity"
)

// UnlockRequest is the body of POST /api/v1/unlock.
type UnlockRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Remember string `json:"remember,omitempty"` // Go duration; empty: the default
}

// UnlockReply says until when the Digital ID stays unlocked (unless idle).
type UnlockReply struct {
	Email         string    `json:"email"`
	UnlockedUntil time.Time `json:"unlocked_until"`
}

// LockRequest is the body of POST /api/v1/lock.
type LockRequest struct {
	Email string `json:"email"`
}

func (s *Server) apiUnlock(w http.ResponseWriter, r *http.Request, login string) error {
	var req UnlockRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	email, err := ownMailbox(login, req.Email)
	if err != nil {
		return err
	}
	remember, err := parseRemember(req.Remember)
	if err != nil {
		return err
	}
	until, err := s.unlock(r, email, identity.Secret(req.Password), remember)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, UnlockReply{Email: email, UnlockedUntil: until.UTC()})
	return nil
}

// unlock is shared by the API and the page.
func (s *Server) unlock(r *http.Request, email string, pw identity.Secret, remember time.Duration) (time.Time, error) {
	until, err := s.opts.Identity.Unlock(r.Context(), identity.UnlockRequest{
		Email: email, Password: pw, Remember: remember, ClientAddr: clientAddr(r),
	})
	if err != nil {
		s.metrics.unlock("refused")
		return time.Time{}, err
	}
	s.metrics.unlock("ok")
	s.log.InfoContext(r.Context(), "digital id unlocked", "request_id", requestID(r.Context()),
		"email", email, "until", until)
	return until, nil
}

func (s *Server) apiLock(w http.ResponseWriter, r *http.Request, login string) error {
	var req LockRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	email, err := ownMailbox(login, req.Email)
	if err != nil {
		return err
	}
	if err := s.opts.Identity.Lock(r.Context(), email); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"email": email, "locked": true})
	return nil
}
