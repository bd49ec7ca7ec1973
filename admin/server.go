package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"smimeproxy/crypto/seal"
	"smimeproxy/identity"
)

// Identity is what the endpoint needs of the Digital ID service;
// *identity.Service provides it.
type Identity interface {
	CreateToken(ctx context.Context, email string, purpose identity.Purpose, ttl time.Duration) (identity.Secret, time.Time, error)
	Enroll(ctx context.Context, req identity.EnrollRequest) (*identity.EnrollResult, error)
	ImportPKCS12(ctx context.Context, req identity.ImportRequest) (*identity.EnrollResult, error)
	AcceptRoot(ctx context.Context, email, fingerprint string) (*identity.DigitalID, error)
	Unlock(ctx context.Context, req identity.UnlockRequest) (time.Time, error)
	Lock(ctx context.Context, email string) error
	List(ctx context.Context) ([]identity.DigitalID, error)
	Show(ctx context.Context, email string) (*identity.Details, error)
	Revoke(ctx context.Context, email string) error
	EscrowedKeys(ctx context.Context, email string) (*identity.Escrow, error)
	PublicCertificates(ctx context.Context, email string) ([]*x509.Certificate, error)
	TrustList(ctx context.Context, email string) ([]identity.TrustedRoot, error)
	TrustAdd(ctx context.Context, cert *x509.Certificate) (*identity.TrustedRoot, error)
	TrustRemove(ctx context.Context, fingerprint string) error
}

var _ Identity = (*identity.Service)(nil)

// Clock gives the time; tests inject one they move by hand.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Defaults for Options fields left zero.
const (
	DefaultSessionTTL     = time.Hour
	DefaultMaxRequestSize = 1 << 20
	// MaxPageSessionTTL keeps page logins short-lived whatever is configured.
	MaxPageSessionTTL = 7 * 24 * time.Hour
)

// Options configures New.
type Options struct {
	Identity Identity               // required
	Auth     identity.Authenticator // checks mailbox logins (user calls); required
	// AdminToken is the bearer credential of admin calls (LoadOrCreateToken).
	// Empty refuses every admin call.
	AdminToken seal.Secret
	// PublicURL is this endpoint as users reach it ("http://127.0.0.1:8080");
	// its host is allowed in Host headers and its origin in Origin headers.
	PublicURL string
	// AllowedHosts are further host[:port] names clients may use.
	AllowedHosts []string
	// CARootPEM is served at /ca.pem.
	CARootPEM []byte
	Logger    *slog.Logger
	// Registry receives the endpoint's metrics and is served at /metrics;
	// nil: a fresh registry of its own.
	Registry *prometheus.Registry
	Clock    Clock
	// SessionTTL of page logins (0: DefaultSessionTTL).
	SessionTTL time.Duration
	// MaxRequestSize caps request bodies (0: DefaultMaxRequestSize).
	MaxRequestSize int64
	// RememberDefault and RememberMax shape the unlock page's choice of
	// periods (config [keys]); identity enforces the cap itself.
	RememberDefault time.Duration
	RememberMax     time.Duration
}

// Server is the admin endpoint; it is an http.Handler.
type Server struct {
	opts     Options
	log      *slog.Logger
	clock    Clock
	public   *url.URL
	hosts    map[string]bool
	origins  map[string]bool
	csrfKey  []byte
	sessions *sessions
	logins   *loginLimiter
	metrics  *metrics
	pages    map[string]*template.Template
	mux      *http.ServeMux
	bearer   [sha256.Size]byte
}

// New returns the endpoint described by opts.
func New(opts Options) (*Server, error) {
	if opts.Identity == nil || opts.Auth == nil {
		return nil, errors.New("admin: Identity and Auth are required")
	}
	pub, err := url.Parse(opts.PublicURL)
	if err != nil || (pub.Scheme != "http" && pub.Scheme != "https") || pub.Host == "" {
		return nil, fmt.Errorf("admin: public URL %q must be an http:// or https:// URL with a host", opts.PublicURL)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	opts.SessionTTL = min(opts.SessionTTL, MaxPageSessionTTL)
	if opts.MaxRequestSize <= 0 {
		opts.MaxRequestSize = DefaultMaxRequestSize
	}
	if opts.RememberDefault <= 0 {
		opts.RememberDefault = identity.DefaultRemember
	}
	if opts.RememberMax <= 0 {
		opts.RememberMax = identity.DefaultMaxRemember
	}
	s := &Server{
		opts: opts, log: opts.Logger, clock: opts.Clock, public: pub,
		csrfKey: make([]byte, 32),
		mux:     http.NewServeMux(),
	}
	if _, err := rand.Read(s.csrfKey); err != nil {
		return nil, fmt.Errorf("admin: csrf key: %w", err)
	}
	s.hosts, s.origins = allowedNames(pub, opts.AllowedHosts)
	s.sessions = newSessions(opts.Clock, opts.SessionTTL)
	s.logins = newLoginLimiter(opts.Clock)
	s.bearer = sha256.Sum256([]byte(opts.AdminToken))
	if s.metrics, err = newMetrics(opts.Registry); err != nil {
		return nil, err
	}
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	api := func(pattern string, h handlerFunc) { s.mux.Handle(pattern, s.apiHandler(h)) }
	admin := func(pattern string, h handlerFunc) { api(pattern, s.requireAdmin(h)) }
	user := func(pattern string, h userHandlerFunc) { api(pattern, s.requireUser(h)) }

	admin("POST /api/v1/tokens", s.apiCreateToken)
	admin("GET /api/v1/identities", s.apiListIdentities)
	admin("GET /api/v1/identities/{email}", s.apiShowIdentity)
	admin("DELETE /api/v1/identities/{email}", s.apiRevokeIdentity)
	admin("GET /api/v1/identities/{email}/escrow", s.apiEscrow)
	admin("GET /api/v1/trust/roots", s.apiTrustList)
	admin("POST /api/v1/trust/roots", s.apiTrustAdd)
	admin("DELETE /api/v1/trust/roots/{fingerprint}", s.apiTrustRemove)
	user("POST /api/v1/enroll", s.apiEnroll)
	user("POST /api/v1/enroll/import", s.apiImport)
	user("POST /api/v1/trust/accept", s.apiTrustAccept)
	user("POST /api/v1/unlock", s.apiUnlock)
	user("POST /api/v1/lock", s.apiLock)
	user("POST /api/v1/upgrade", s.apiUpgrade)
	user("POST /api/v1/upgrade/cancel", s.apiUpgradeCancel)
	api("GET /api/v1/certificates", s.apiCertificates)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) { s.fail(w, r, errNotFound) })

	s.mux.HandleFunc("GET /ca.pem", s.caPEM)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /metrics", s.metrics.handler(s.opts.Registry))
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles()))
	s.pageRoutes()
}

// ServeHTTP checks the Host header, gives the request an id, caps its body,
// refuses cross-origin writes, and counts it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.clock.Now()
	id := newRequestID()
	rw := &statusWriter{ResponseWriter: w}
	rw.Header().Set("X-Request-Id", id)
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	rw.Header().Set("Referrer-Policy", "same-origin")
	rw.Header().Set("Cache-Control", "no-store")
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	r.Body = http.MaxBytesReader(rw, r.Body, s.opts.MaxRequestSize)

	switch {
	case !s.hosts[strings.ToLower(r.Host)]:
		s.fail(rw, r, errHostNotAllowed)
	case isWrite(r.Method) && !s.sameOrigin(r):
		s.fail(rw, r, errCrossOrigin)
	default:
		s.mux.ServeHTTP(rw, r)
	}
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	s.metrics.request(route, status)
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "admin request",
		slog.String("request_id", id), slog.String("method", r.Method),
		slog.String("route", route), slog.Int("status", status),
		slog.String("client", clientAddr(r)),
		slog.Duration("elapsed", s.clock.Now().Sub(start)))
}

func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// sameOrigin refuses what a browser marks as coming from another site.
// Sec-Fetch-Site, which pages cannot forge, decides when present (a
// browser may send "Origin: null" for its own forms); older browsers are
// judged by Origin. Clients that are not browsers (curl, the CLI) send
// neither header.
func (s *Server) sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		origin := r.Header.Get("Origin")
		return origin == "" || origin == "null" || s.origins[strings.ToLower(origin)]
	case "":
		origin := r.Header.Get("Origin")
		return origin == "" || s.origins[strings.ToLower(origin)]
	default:
		return false
	}
}

// allowedNames derives the Host and Origin allow-lists: the public URL's
// host, the extra names, and for a loopback public URL every loopback
// spelling with the same port.
func allowedNames(pub *url.URL, extra []string) (hosts, origins map[string]bool) {
	hosts, origins = map[string]bool{}, map[string]bool{}
	port := pub.Port()
	add := func(h string) {
		h = strings.ToLower(h)
		hosts[h] = true
		for _, scheme := range []string{"http", "https"} {
			origins[scheme+"://"+h] = true
		}
		defPort := map[string]string{"http": "80", "https": "443"}[pub.Scheme]
		if hostOnly, p, err := net.SplitHostPort(h); err == nil && p == defPort {
			hosts[hostOnly] = true
			origins[pub.Scheme+"://"+hostOnly] = true
		}
	}
	hostPort := func(h string) string {
		if port == "" {
			return h
		}
		return net.JoinHostPort(h, port)
	}
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[pub.Scheme]
	}
	add(hostPort(pub.Hostname()))
	if isLoopbackName(pub.Hostname()) {
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			add(hostPort(h))
		}
	}
	for _, h := range extra {
		add(h)
	}
	return hosts, origins
}

func isLoopbackName(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// clientAddr is the peer's IP address, for back-off and logs.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter remembers the status for metrics and logs.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) caPEM(w http.ResponseWriter, _ *http.Request) {
	if len(s.opts.CARootPEM) == 0 {
		http.Error(w, "no CA root configured", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `attachment; filename="smimeproxy-root.pem"`)
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.opts.CARootPEM)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// csrfFor binds a form token to the browser's CSRF cookie.
func (s *Server) csrfFor(cookie string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte("csrf\x00" + cookie))
	return hex.EncodeToString(m.Sum(nil))
}
