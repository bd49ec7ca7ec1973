package admin

import (
	"context"
	"net/http"
	"net/url"

	"smimeproxy/identity"
)

// EscrowKeyView is one escrowed encryption key as GET
// /api/v1/identities/{email}/escrow gives it: the DER CMS EnvelopedData
// (base64 in JSON) that only the key-recovery private key opens, and the
// certificate whose key is inside.
type EscrowKeyView struct {
	KeyID       string   `json:"key_id"`
	IdentityID  string   `json:"identity_id"`
	Current     bool     `json:"current"`
	Certificate CertInfo `json:"certificate"`
	// CertificatePEM lets the administrator check the recovered key
	// against its certificate offline.
	CertificatePEM string `json:"certificate_pem"`
	Envelope       []byte `json:"envelope"`
}

// EscrowReply is the reply of GET /api/v1/identities/{email}/escrow.
type EscrowReply struct {
	Email string `json:"email"`
	// RecoveryCertificate is the key-recovery certificate the envelopes
	// are encrypted to (openssl cms -decrypt -recip).
	RecoveryCertificate *CertInfo       `json:"recovery_certificate"`
	Keys                []EscrowKeyView `json:"keys"`
}

// apiEscrow is admin-only: the envelopes expose no private key without the
// key-recovery key, but which keys exist is the administrator's business.
func (s *Server) apiEscrow(w http.ResponseWriter, r *http.Request) error {
	email, err := identity.NormalizeEmail(r.PathValue("email"))
	if err != nil {
		return err
	}
	esc, err := s.opts.Identity.EscrowedKeys(r.Context(), email)
	if err != nil {
		return err
	}
	reply := EscrowReply{Email: esc.Email, RecoveryCertificate: certInfo(esc.RecoveryCert), Keys: []EscrowKeyView{}}
	for _, k := range esc.Keys {
		reply.Keys = append(reply.Keys, EscrowKeyView{KeyID: k.KeyID, IdentityID: k.IdentityID, Current: k.Current,
			Certificate: *certInfo(k.Cert), CertificatePEM: pemCert(k.Cert), Envelope: k.Envelope})
	}
	s.log.InfoContext(r.Context(), "escrowed keys exported", "request_id", requestID(r.Context()),
		"email", esc.Email, "keys", len(esc.Keys))
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// Escrow fetches a mailbox's escrowed encryption keys for offline recovery.
func (c *Client) Escrow(ctx context.Context, email string) (*EscrowReply, error) {
	var out EscrowReply
	if err := c.call(ctx, http.MethodGet, "/api/v1/identities/"+url.PathEscape(email)+"/escrow", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
