package admin

import (
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"smimeproxy/crypto/ca"
	"smimeproxy/identity"
)

// EnrollRequest is the body of POST /api/v1/enroll. A recovery token
// works here as well: the token's purpose decides.
type EnrollRequest struct {
	Email    string `json:"email"`
	Token    string `json:"token"`
	Name     string `json:"name"`
	Password string `json:"password"`
	Remember string `json:"remember,omitempty"` // Go duration; empty: the default
	// Purpose, when set (enroll | recover), is what the token must be for.
	Purpose string `json:"purpose,omitempty"`
}

// ImportRequest is the body of POST /api/v1/enroll/import.
type ImportRequest struct {
	Email          string `json:"email"`
	PKCS12         string `json:"pkcs12"` // base64 (standard alphabet)
	PKCS12Password string `json:"pkcs12_password"`
	Name           string `json:"name"`
	Password       string `json:"password"`
	Remember       string `json:"remember,omitempty"`
}

// EnrollReply is the reply of both enrolment calls.
type EnrollReply struct {
	Identity      IdentityView   `json:"identity"`
	Root          ca.Description `json:"root"`
	RootAccepted  bool           `json:"root_accepted"`
	UnlockedUntil *time.Time     `json:"unlocked_until,omitempty"`
	// Warning: for imports, what a forgotten password costs.
	Warning string `json:"warning,omitempty"`
}

// parseRemember reads an optional remember period; identity caps it.
func parseRemember(s string) (time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < 0 {
		return 0, badRequest(`remember must be a duration such as "30m" or "2h"`)
	}
	return d, nil
}

func (s *Server) apiEnroll(w http.ResponseWriter, r *http.Request, login string) error {
	var req EnrollRequest
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
	purpose := identity.Purpose(req.Purpose)
	if purpose != "" && !purpose.Valid() {
		return badRequest(`purpose must be "enroll" or "recover"`)
	}
	res, err := s.enroll(r, email, req.Token, req.Name, identity.Secret(req.Password), remember, purpose)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, enrollReply(res, ""))
	return nil
}

// enroll is shared by the API and the page: token parsed first, so a typo
// is reported before anything else happens.
func (s *Server) enroll(r *http.Request, email, token, name string, pw identity.Secret, remember time.Duration, purpose identity.Purpose) (*identity.EnrollResult, error) {
	tok, err := identity.ParseToken(token)
	if err != nil {
		s.metrics.enrolment("refused")
		return nil, err
	}
	res, err := s.opts.Identity.Enroll(r.Context(), identity.EnrollRequest{
		Email: email, Token: tok, Name: name, Password: pw,
		Remember: remember, ClientAddr: clientAddr(r), Purpose: purpose,
	})
	if err != nil {
		s.metrics.enrolment("refused")
		return nil, err
	}
	s.metrics.enrolment("ok")
	s.log.InfoContext(r.Context(), "digital id enrolled", "request_id", requestID(r.Context()),
		"email", email, "state", res.Identity.State)
	return res, nil
}

func (s *Server) apiImport(w http.ResponseWriter, r *http.Request, login string) error {
	var req ImportRequest
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
	p12, err := base64.StdEncoding.DecodeString(strings.TrimSpace(req.PKCS12))
	if err != nil || len(p12) == 0 {
		return badRequest("pkcs12 must be the PKCS#12 file in base64")
	}
	res, err := s.importPKCS12(r, email, p12, identity.Secret(req.PKCS12Password), req.Name, identity.Secret(req.Password), remember)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, enrollReply(res, identity.ImportWarning))
	return nil
}

func (s *Server) importPKCS12(r *http.Request, email string, p12 []byte, p12pw identity.Secret, name string, pw identity.Secret, remember time.Duration) (*identity.EnrollResult, error) {
	res, err := s.opts.Identity.ImportPKCS12(r.Context(), identity.ImportRequest{
		Email: email, PKCS12: p12, PKCS12Password: p12pw, Name: name, Password: pw,
		Remember: remember, ClientAddr: clientAddr(r),
	})
	if err != nil {
		s.metrics.enrolment("refused")
		return nil, err
	}
	s.metrics.enrolment("imported")
	s.log.InfoContext(r.Context(), "digital id imported", "request_id", requestID(r.Context()),
		"email", email, "state", res.Identity.State)
	return res, nil
}

func enrollReply(res *identity.EnrollResult, warning string) EnrollReply {
	reply := EnrollReply{
		Identity: identityView(res.Identity), Root: res.Root.Description,
		RootAccepted: res.RootAccepted, Warning: warning,
	}
	if !res.UnlockedUntil.IsZero() {
		t := res.UnlockedUntil.UTC()
		reply.UnlockedUntil = &t
	}
	return reply
}
