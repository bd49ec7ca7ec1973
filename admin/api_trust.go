package admin

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"

	"smimeproxy/crypto/ca"
	"smimeproxy/identity"
)

// AcceptRequest is the body of POST /api/v1/trust/accept: the user confirms
// the issuing root by its SHA-256 fingerprint.
type AcceptRequest struct {
	Email       string `json:"email"`
	Fingerprint string `json:"fingerprint"`
}

func (s *Server) apiTrustAccept(w http.ResponseWriter, r *http.Request, login string) error {
	var req AcceptRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	email, err := ownMailbox(login, req.Email)
	if err != nil {
		return err
	}
	if strings.TrimSpace(req.Fingerprint) == "" {
		return badRequest("fingerprint is required: the SHA-256 fingerprint of the root you accept")
	}
	id, err := s.opts.Identity.AcceptRoot(r.Context(), email, req.Fingerprint)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"identity": identityView(*id)})
	return nil
}

// RootView is a trust-store entry in replies.
type RootView struct {
	ca.Description
	Owner      string `json:"owner,omitempty"`
	FromConfig bool   `json:"from_config"`
	PEM        string `json:"pem,omitempty"`
}

func rootView(t identity.TrustedRoot) RootView {
	v := RootView{Description: t.Description, Owner: t.Owner, FromConfig: t.FromConfig}
	if t.Cert != nil {
		v.PEM = pemCert(t.Cert)
	}
	return v
}

// RootsReply is the reply of GET /api/v1/trust/roots.
type RootsReply struct {
	Roots []RootView `json:"roots"`
}

// apiTrustList lists the org-wide roots, or with ?email= also that user's.
func (s *Server) apiTrustList(w http.ResponseWriter, r *http.Request) error {
	email := r.URL.Query().Get("email")
	if email != "" {
		var err error
		if email, err = identity.NormalizeEmail(email); err != nil {
			return err
		}
	}
	roots, err := s.opts.Identity.TrustList(r.Context(), email)
	if err != nil {
		return err
	}
	reply := RootsReply{Roots: []RootView{}}
	for _, t := range roots {
		reply.Roots = append(reply.Roots, rootView(t))
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// TrustAddRequest is the body of POST /api/v1/trust/roots.
type TrustAddRequest struct {
	PEM string `json:"pem"` // one CA certificate
}

func (s *Server) apiTrustAdd(w http.ResponseWriter, r *http.Request) error {
	var req TrustAddRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	block, _ := pem.Decode([]byte(req.PEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return badRequest("pem must hold one PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return badRequest("the certificate cannot be parsed")
	}
	if !cert.IsCA {
		return badRequest("the certificate is not a CA certificate (basicConstraints CA:TRUE)")
	}
	root, err := s.opts.Identity.TrustAdd(r.Context(), cert)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "trusted root added", "request_id", requestID(r.Context()),
		"fingerprint", root.Fingerprint)
	writeJSON(w, http.StatusCreated, rootView(*root))
	return nil
}

func (s *Server) apiTrustRemove(w http.ResponseWriter, r *http.Request) error {
	fpr := r.PathValue("fingerprint")
	if err := s.opts.Identity.TrustRemove(r.Context(), fpr); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "trusted root removed", "request_id", requestID(r.Context()), "fingerprint", fpr)
	writeJSON(w, http.StatusOK, map[string]any{"fingerprint": fpr, "removed": true})
	return nil
}
