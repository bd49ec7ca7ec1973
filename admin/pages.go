package admin

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"time"

	"smimeproxy/crypto/ca"
	"smimeproxy/identity"
)

//go:embed web
var webFS embed.FS

var pageNames = []string{"index", "login", "enroll", "unlock", "upgrade"}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{"date": func(t time.Time) string { return t.UTC().Format("2 Jan 2006") }}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(webFS, "web/layout.html", "web/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("admin: page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

func staticFiles() http.Handler {
	sub, _ := fs.Sub(webFS, "web")
	return http.FileServerFS(onlyCSS{sub})
}

// onlyCSS serves the style sheet and nothing else of the embedded files.
type onlyCSS struct{ fs.FS }

func (o onlyCSS) Open(name string) (fs.File, error) {
	if name != "style.css" {
		return nil, fs.ErrNotExist
	}
	return o.FS.Open(name)
}

// pageData is what every page template gets.
type pageData struct {
	Title, Page   string
	User, CSRF    string
	Error, Notice string
	Next, Email   string // login form
	State         string // none | pending | active (the mailbox's current Digital ID)
	ID            *idPage
	Root          *ca.Description
	Remember      []rememberOption
	ImportWarning string
	Form          struct{ Name string }
}

// idPage is a Digital ID as the pages show it.
type idPage struct {
	Name, Email, Source, StateText string
	Unlocked                       bool
	UnlockedUntil                  string
}

type rememberOption struct {
	Value, Label string
	Selected     bool
}

// rememberOptions offers periods up to the configured maximum, with the
// default selected.
func (s *Server) rememberOptions() []rememberOption {
	steps := []time.Duration{5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
		2 * time.Hour, 5 * time.Hour, 8 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	steps = append(steps, s.opts.RememberDefault, s.opts.RememberMax)
	seen := map[time.Duration]bool{}
	var opts []rememberOption
	slices.Sort(steps)
	for _, d := range steps {
		if d <= 0 || d > s.opts.RememberMax || seen[d] {
			continue
		}
		seen[d] = true
		opts = append(opts, rememberOption{Value: d.String(), Label: humanDuration(d), Selected: d == s.opts.RememberDefault})
	}
	return opts
}

func humanDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0 && d == time.Hour:
		return "1 hour"
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	default:
		return d.String()
	}
}

func (s *Server) pageRoutes() {
	s.mux.HandleFunc("GET /{$}", s.pageIndex)
	s.mux.HandleFunc("GET /enroll", s.userPage("enroll", "Get a Digital ID", s.fillEnroll))
	s.mux.HandleFunc("GET /unlock", s.userPage("unlock", "Unlock your Digital ID", s.fillState))
	s.mux.HandleFunc("GET /upgrade", s.userPage("upgrade", "Upgrade old keys", s.fillState))
	s.mux.HandleFunc("POST /login", s.postLogin)
	s.mux.HandleFunc("POST /logout", s.postLogout)
	s.mux.HandleFunc("POST /enroll", s.postForm(s.doEnroll))
	s.mux.HandleFunc("POST /enroll/accept", s.postForm(s.doAccept))
	s.mux.HandleFunc("POST /enroll/decline", s.postForm(s.doDecline))
	s.mux.HandleFunc("POST /enroll/import", s.postForm(s.doImport))
	s.mux.HandleFunc("POST /unlock", s.postForm(s.doUnlock))
	s.mux.HandleFunc("POST /lock", s.postForm(s.doLock))
}

func (s *Server) render(w http.ResponseWriter, status int, d *pageData) {
	var buf bytes.Buffer
	if err := s.pages[d.Page].ExecuteTemplate(&buf, "layout", d); err != nil {
		s.log.Error("render page", "page", d.Page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = io.Copy(w, &buf)
}

func (s *Server) newPage(w http.ResponseWriter, r *http.Request, page, title string) *pageData {
	d := &pageData{Page: page, Title: title, CSRF: s.csrfToken(w, r), Remember: s.rememberOptions(),
		ImportWarning: identity.ImportWarning}
	d.User, _ = s.sessionUser(r)
	return d
}

func (s *Server) pageIndex(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, s.newPage(w, r, "index", "Your Digital ID for secure mail"))
}

// loginPage shows the login form that leads back to next.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, status int, next, email, msg string) {
	d := s.newPage(w, r, "login", "Log in")
	d.User = ""
	d.Next, d.Email, d.Error = next, email, msg
	s.render(w, status, d)
}

// userPage renders a page that needs a login, with fill adding the
// mailbox's state.
func (s *Server) userPage(page, title string, fill func(*http.Request, *pageData) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d := s.newPage(w, r, page, title)
		if d.User == "" {
			s.loginPage(w, r, http.StatusOK, "/"+page, "", "")
			return
		}
		d.Notice = notices[r.URL.Query().Get("done")]
		status := http.StatusOK
		if err := fill(r, d); err != nil {
			e := s.logFailure(r, err)
			d.Error, status = e.Message, e.Status
		}
		s.render(w, status, d)
	}
}

// notices are the messages after a redirect (POST, then GET).
var notices = map[string]string{
	"enrolled": "Your Digital ID was created. Check the issuing root below and accept it to start using the Digital ID.",
	"accepted": "You accepted the root. Your Digital ID is active.",
	"ready":    "Your Digital ID was created and is ready to use.",
	"declined": "You declined for now. Your Digital ID stays pending: come back to this page to accept the root when you are ready.",
	"imported": "Your Digital ID was imported.",
	"unlocked": "Your Digital ID is unlocked.",
	"locked":   "Your Digital ID is locked.",
}

// fillState adds the mailbox's current Digital ID.
func (s *Server) fillState(r *http.Request, d *pageData) error {
	d.State = "none"
	det, err := s.opts.Identity.Show(r.Context(), d.User)
	if errors.Is(err, identity.ErrNoIdentity) {
		return nil
	}
	if err != nil {
		return err
	}
	cur := det.Current
	if cur == nil {
		return nil
	}
	d.State = string(cur.State)
	p := &idPage{Name: cur.Name, Email: cur.Email, Source: "issued by this gateway (keys escrowed for recovery)"}
	if cur.Source == identity.SourceImport {
		p.Source = "imported from another certificate authority (no recovery)"
	}
	switch cur.State {
	case identity.StatePending:
		p.StateText = "waiting for you to accept the issuing root"
	case identity.StateActive:
		p.StateText = "active"
	default:
		p.StateText = string(cur.State)
	}
	if !cur.UnlockedUntil.IsZero() && cur.UnlockedUntil.After(s.clock.Now()) {
		p.Unlocked = true
		p.UnlockedUntil = cur.UnlockedUntil.UTC().Format("15:04 MST, 2 Jan 2006")
	}
	d.ID = p
	if cur.Root != nil {
		desc := cur.Root.Description
		d.Root = &desc
	}
	return nil
}

func (s *Server) fillEnroll(r *http.Request, d *pageData) error { return s.fillState(r, d) }
