package admin

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"time"

	"smimeproxy/crypto/ca"
	"smimeproxy/identity"
)

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Email   string `json:"email"`
	Purpose string `json:"purpose,omitempty"` // enroll (default) | recover
	TTL     string `json:"ttl,omitempty"`     // Go duration, "72h"; empty: the default
}

// TokenReply is the reply of POST /api/v1/tokens; the token appears here
// once and nowhere else.
type TokenReply struct {
	Token   string    `json:"token"`
	Email   string    `json:"email"`
	Purpose string    `json:"purpose"`
	Expires time.Time `json:"expires"`
}

func (s *Server) apiCreateToken(w http.ResponseWriter, r *http.Request) error {
	var req TokenRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	purpose := identity.PurposeEnroll
	if req.Purpose != "" {
		purpose = identity.Purpose(req.Purpose)
	}
	if !purpose.Valid() {
		return badRequest(`purpose must be "enroll" or "recover"`)
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < time.Minute || d > identity.MaxTokenTTL {
			return badRequest("ttl must be a duration such as \"72h\", from 1m to " + identity.MaxTokenTTL.String())
		}
		ttl = d
	}
	email, err := identity.NormalizeEmail(req.Email)
	if err != nil {
		return err
	}
	tok, exp, err := s.opts.Identity.CreateToken(r.Context(), email, purpose, ttl)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, TokenReply{Token: string(tok), Email: email, Purpose: string(purpose), Expires: exp.UTC()})
	return nil
}

// CertInfo describes a certificate in replies.
type CertInfo struct {
	ca.Description
	Serial string `json:"serial"`
}

func certInfo(c *x509.Certificate) *CertInfo {
	if c == nil {
		return nil
	}
	return &CertInfo{Description: ca.Describe(c), Serial: c.SerialNumber.Text(16)}
}

// IdentityView is a Digital ID as the API shows it: never key material.
type IdentityView struct {
	ID                string          `json:"id"`
	Email             string          `json:"email"`
	Name              string          `json:"name"`
	State             identity.State  `json:"state"`
	Source            identity.Source `json:"source"`
	Created           time.Time       `json:"created"`
	Updated           time.Time       `json:"updated"`
	Escrowed          bool            `json:"escrowed"`
	UnlockedUntil     *time.Time      `json:"unlocked_until,omitempty"`
	SigningCert       *CertInfo       `json:"signing_cert,omitempty"`
	EncryptionCert    *CertInfo       `json:"encryption_cert,omitempty"`
	EncryptionHistory []*CertInfo     `json:"encryption_history,omitempty"`
	Root              *ca.Description `json:"root,omitempty"`
}

func identityView(d identity.DigitalID) IdentityView {
	v := IdentityView{
		ID: d.ID, Email: d.Email, Name: d.Name, State: d.State, Source: d.Source,
		Created: d.Created.UTC(), Updated: d.Updated.UTC(), Escrowed: d.Escrowed,
		SigningCert: certInfo(d.SigningCert), EncryptionCert: certInfo(d.EncryptionCert),
	}
	if !d.UnlockedUntil.IsZero() {
		t := d.UnlockedUntil.UTC()
		v.UnlockedUntil = &t
	}
	for _, c := range d.EncryptionHistory {
		v.EncryptionHistory = append(v.EncryptionHistory, certInfo(c))
	}
	if d.Root != nil {
		desc := d.Root.Description
		v.Root = &desc
	}
	return v
}

// IdentitiesReply is the reply of GET /api/v1/identities.
type IdentitiesReply struct {
	Identities []IdentityView `json:"identities"`
}

func (s *Server) apiListIdentities(w http.ResponseWriter, r *http.Request) error {
	ids, err := s.opts.Identity.List(r.Context())
	if err != nil {
		return err
	}
	reply := IdentitiesReply{Identities: []IdentityView{}}
	for _, d := range ids {
		reply.Identities = append(reply.Identities, identityView(d))
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// DetailsReply is the reply of GET /api/v1/identities/{email}.
type DetailsReply struct {
	Email   string         `json:"email"`
	Current *IdentityView  `json:"current"`
	Earlier []IdentityView `json:"earlier"`
}

func (s *Server) apiShowIdentity(w http.ResponseWriter, r *http.Request) error {
	email, err := identity.NormalizeEmail(r.PathValue("email"))
	if err != nil {
		return err
	}
	d, err := s.opts.Identity.Show(r.Context(), email)
	if err != nil {
		return err
	}
	reply := DetailsReply{Email: email, Earlier: []IdentityView{}}
	if d.Current != nil {
		v := identityView(*d.Current)
		reply.Current = &v
	}
	for _, e := range d.Earlier {
		reply.Earlier = append(reply.Earlier, identityView(e))
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

func (s *Server) apiRevokeIdentity(w http.ResponseWriter, r *http.Request) error {
	email, err := identity.NormalizeEmail(r.PathValue("email"))
	if err != nil {
		return err
	}
	if err := s.opts.Identity.Revoke(r.Context(), email); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "digital id revoked", "request_id", requestID(r.Context()), "email", email)
	writeJSON(w, http.StatusOK, map[string]any{"email": email, "revoked": true})
	return nil
}

// CertificatesReply is the reply of GET /api/v1/certificates?email=A.
type CertificatesReply struct {
	Email        string   `json:"email"`
	Certificates []string `json:"certificates"` // PEM, signing first
}

// apiCertificates is public: certificates are what senders need to encrypt.
func (s *Server) apiCertificates(w http.ResponseWriter, r *http.Request) error {
	email, err := identity.NormalizeEmail(r.URL.Query().Get("email"))
	if err != nil {
		return err
	}
	certs, err := s.opts.Identity.PublicCertificates(r.Context(), email)
	if err != nil {
		return err
	}
	reply := CertificatesReply{Email: email, Certificates: []string{}}
	for _, c := range certs {
		reply.Certificates = append(reply.Certificates, pemCert(c))
	}
	if strings.Contains(r.Header.Get("Accept"), "application/x-pem-file") {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write([]byte(strings.Join(reply.Certificates, "")))
		return nil
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

func pemCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}
