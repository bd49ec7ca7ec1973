package admin

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"smimeproxy/identity"
)

// formHandler acts on a posted form for the logged-in user and names the
// page to show next and the notice for it (see notices).
type formHandler func(r *http.Request, user string) (page, done string, err error)

var pageTitles = map[string]string{
	"enroll":  "Get a Digital ID",
	"unlock":  "Unlock your Digital ID",
	"upgrade": "Upgrade old keys",
}

var errPasswordsDiffer = badRequest("the two passwords are not the same: type them again")

// parseForm reads a urlencoded or multipart form within the body cap.
func (s *Server) parseForm(r *http.Request) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	if ct == "multipart/form-data" {
		err = r.ParseMultipartForm(s.opts.MaxRequestSize)
	} else {
		err = r.ParseForm()
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errTooLarge
	}
	if err != nil {
		return badRequest("the form could not be read: reload the page and try again")
	}
	return nil
}

// postForm checks the form (body, CSRF token, login) before h runs, then
// redirects (POST, redirect, GET) or shows the page again with the error.
func (s *Server) postForm(h formHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		page := strings.TrimPrefix(r.URL.Path, "/")
		page, _, _ = strings.Cut(page, "/")
		if pageTitles[page] == "" {
			page = "enroll"
		}
		if err := s.parseForm(r); err != nil {
			s.formError(w, r, page, err)
			return
		}
		if err := s.checkCSRF(r); err != nil {
			s.formError(w, r, page, err)
			return
		}
		user, ok := s.sessionUser(r)
		if !ok {
			e := s.logFailure(r, errSession)
			s.loginPage(w, r, e.Status, "/"+page, "", e.Message)
			return
		}
		next, done, err := h(r, user)
		if err != nil {
			s.formError(w, r, page, err)
			return
		}
		target := "/" + next
		if done != "" {
			target += "?done=" + done
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	}
}

// formError shows page again with err's human message.
func (s *Server) formError(w http.ResponseWriter, r *http.Request, page string, err error) {
	e := s.logFailure(r, err)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(e.RetryAfter))
	}
	d := s.newPage(w, r, page, pageTitles[page])
	if d.User == "" {
		s.loginPage(w, r, e.Status, "/"+page, "", e.Message)
		return
	}
	if fillErr := s.fillState(r, d); fillErr != nil {
		s.logFailure(r, fillErr)
	}
	d.Error = e.Message
	d.Form.Name = r.PostFormValue("name")
	s.render(w, e.Status, d)
}

func (s *Server) postLogin(w http.ResponseWriter, r *http.Request) {
	next := r.PostFormValue("next")
	if pageTitles[strings.TrimPrefix(next, "/")] == "" {
		next = "/enroll"
	}
	fail := func(err error) {
		e := s.logFailure(r, err)
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", retryAfterSeconds(e.RetryAfter))
		}
		s.loginPage(w, r, e.Status, next, r.PostFormValue("email"), e.Message)
	}
	if err := s.parseForm(r); err != nil {
		fail(err)
		return
	}
	if err := s.checkCSRF(r); err != nil {
		fail(err)
		return
	}
	email, err := s.login(r, r.PostFormValue("email"), identity.Secret(r.PostFormValue("password")))
	if err != nil {
		fail(err)
		return
	}
	s.startSession(w, r, email)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) postLogout(w http.ResponseWriter, r *http.Request) {
	if err := s.parseForm(r); err != nil {
		s.formError(w, r, "enroll", err)
		return
	}
	if err := s.checkCSRF(r); err != nil {
		s.formError(w, r, "enroll", err)
		return
	}
	s.endSession(w, r)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func passwordPair(r *http.Request) (identity.Secret, error) {
	pw := r.PostFormValue("password")
	if pw != r.PostFormValue("password2") {
		return "", errPasswordsDiffer
	}
	return identity.Secret(pw), nil
}

func (s *Server) doEnroll(r *http.Request, user string) (string, string, error) {
	pw, err := passwordPair(r)
	if err != nil {
		return "", "", err
	}
	remember, err := parseRemember(r.PostFormValue("remember"))
	if err != nil {
		return "", "", err
	}
	res, err := s.enroll(r, user, r.PostFormValue("token"), r.PostFormValue("name"), pw, remember, "")
	if err != nil {
		return "", "", err
	}
	if res.Identity.State == identity.StateActive {
		return "enroll", "ready", nil // root trusted before (org-wide, or a recovery)
	}
	return "enroll", "enrolled", nil
}

func (s *Server) doAccept(r *http.Request, user string) (string, string, error) {
	if _, err := s.opts.Identity.AcceptRoot(r.Context(), user, r.PostFormValue("fingerprint")); err != nil {
		return "", "", err
	}
	return "enroll", "accepted", nil
}

// doDecline changes nothing: the Digital ID stays pending, resumable.
func (s *Server) doDecline(*http.Request, string) (string, string, error) {
	return "enroll", "declined", nil
}

func (s *Server) doImport(r *http.Request, user string) (string, string, error) {
	pw, err := passwordPair(r)
	if err != nil {
		return "", "", err
	}
	f, _, err := r.FormFile("pkcs12")
	if err != nil {
		return "", "", badRequest("choose the PKCS#12 file (.p12 or .pfx) to import")
	}
	defer f.Close()
	p12, err := io.ReadAll(f)
	if err != nil || len(p12) == 0 {
		return "", "", badRequest("the PKCS#12 file could not be read")
	}
	res, err := s.importPKCS12(r, user, p12, identity.Secret(r.PostFormValue("pkcs12_password")),
		r.PostFormValue("name"), pw, 0)
	if err != nil {
		return "", "", err
	}
	if res.Identity.State == identity.StatePending {
		return "enroll", "enrolled", nil
	}
	return "enroll", "imported", nil
}

func (s *Server) doUnlock(r *http.Request, user string) (string, string, error) {
	remember, err := parseRemember(r.PostFormValue("remember"))
	if err != nil {
		return "", "", err
	}
	if _, err := s.unlock(r, user, identity.Secret(r.PostFormValue("password")), remember); err != nil {
		return "", "", err
	}
	return "unlock", "unlocked", nil
}

func (s *Server) doLock(r *http.Request, user string) (string, string, error) {
	if err := s.opts.Identity.Lock(r.Context(), user); err != nil {
		return "", "", err
	}
	return "unlock", "locked", nil
}
