package admin

import "net/http"

// UpgradeRequest is the body of POST /api/v1/upgrade: convert a legacy key
// file found for the mailbox into a Digital ID.
type UpgradeRequest struct {
	Email        string `json:"email"`
	File         string `json:"file"`
	FilePassword string `json:"file_password"`
	Name         string `json:"name"`
	Password     string `json:"password"`
}

// apiUpgrade answers 501 until package identity offers the legacy
// upgrade; the request is still checked, so clients see the real errors
// for bad input and other mailboxes.
func (s *Server) apiUpgrade(_ http.ResponseWriter, r *http.Request, login string) error {
	var req UpgradeRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if _, err := ownMailbox(login, req.Email); err != nil {
		return err
	}
	return errNotImplemented
}

func (s *Server) apiUpgradeCancel(_ http.ResponseWriter, r *http.Request, login string) error {
	var req LockRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if _, err := ownMailbox(login, req.Email); err != nil {
		return err
	}
	return errNotImplemented
}
