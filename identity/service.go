package identity

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"

	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/seal"
)

// Issuer is what the service needs of the CA; *ca.CA provides it.
type Issuer interface {
	// Chain returns the issuing CA certificate first, then anything above it.
	Chain() []*x509.Certificate
	IssueSigning(pub crypto.PublicKey, email, name string) (*x509.Certificate, error)
	IssueEncryption(pub crypto.PublicKey, email, name string) (*x509.Certificate, error)
	// EscrowCertificate is the key-recovery certificate encryption keys
	// are escrowed to.
	EscrowCertificate() *x509.Certificate
}

var _ Issuer = (*ca.CA)(nil)

// Options configures a Service. Records, CA and Upstream are required.
type Options struct {
	// CA issues the certificates; CADir is its directory, where the
	// key-recovery key (ca.EscrowKeyFile) is looked for during recovery only.
	CA    Issuer
	CADir string
	// Upstream checks mailbox logins (user calls).
	Upstream Authenticator
	Clock    Clock
	Logger   *slog.Logger
	// KeyType of new users' keys: ca.KeyRSA2048 (default) or ca.KeyP256 …
	KeyType ca.KeyType
	// Seal are the Argon2id parameters for new Digital IDs (zero:
	// seal.DefaultParams); Limiter bounds concurrent derivations (nil: two).
	Seal    seal.Params
	Limiter *seal.Limiter
	// Remember is the default unlock period, RememberMax its cap (config
	// [keys]); IdleTimeout locks an ID unused that long before its period
	// ends (0: no idle lock, the remembered period alone counts).
	Remember    time.Duration
	RememberMax time.Duration
	IdleTimeout time.Duration
	// TokenTTL is the default token lifetime (0: DefaultTokenTTL).
	TokenTTL time.Duration
	// OrgRoots are trusted for every mailbox (config).
	OrgRoots []*x509.Certificate
	// MinPasswordLen for Digital ID passwords (0: 8).
	MinPasswordLen int
	// Domains, when not empty, are the only mail domains whose mailboxes
	// may get a Digital ID (config [identity] domains).
	Domains []string
}

// Errors callers branch on.
var (
	ErrNoIdentity      = errors.New("this mailbox has no Digital ID: enrol with a security token from your administrator")
	ErrPendingTrust    = errors.New("the Digital ID waits for its user to accept the issuing root")
	ErrAlreadyEnrolled = errors.New("this mailbox already has a Digital ID: ask your administrator for a recovery token, or to revoke it")
	ErrBadEmail        = errors.New("not a plain e-mail address")
	ErrBadName         = errors.New("the Digital ID name must be 1 to 64 printable characters")
	ErrWeakPassword    = errors.New("the Digital ID password is too short")
	ErrFingerprint     = errors.New("the fingerprint does not match the issuing root")
	ErrNoEscrow        = errors.New("no escrowed keys to recover for this mailbox")
	ErrEscrowKey       = errors.New("the key-recovery key is not available: put it into the CA directory for the recovery")
	ErrBadPKCS12       = errors.New("the PKCS#12 file cannot be used")
	ErrNoCertificate   = errors.New("no certificate known for this address")
	ErrDomain          = errors.New("this gateway issues no Digital IDs for that mail domain")
)

// Service manages the Digital IDs of one gateway. It is safe for concurrent
// use. Close wipes every unlocked key and drops every opened one.
type Service struct {
	rec      records
	ca       Issuer
	caDir    string
	upstream Authenticator
	clock    Clock
	log      *slog.Logger
	keyType  ca.KeyType
	params   seal.Params
	limiter  *seal.Limiter
	remember time.Duration
	maxRem   time.Duration
	tokenTTL time.Duration
	orgRoots []*x509.Certificate
	minPW    int
	domains  []string
	rand     io.Reader

	cache   *unlockCache
	keys    *keyCache // opened keys of unlocked IDs; see keyCache
	backoff *backoff

	lockMu sync.Mutex
	onLock []func(email string) // OnLock listeners

	secretMu sync.Mutex
	secret   []byte // token HMAC key, loaded once

	// hook, when set (tests), runs before each step of an enrolment
	// transaction; an error aborts it there.
	hook func(step string) error

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newService(rec records, opts Options) (*Service, error) {
	if rec == nil || opts.CA == nil || opts.Upstream == nil {
		return nil, errors.New("identity: store, CA and upstream authenticator are required")
	}
	s := &Service{
		rec: rec, ca: opts.CA, caDir: opts.CADir, upstream: opts.Upstream,
		clock: opts.Clock, log: opts.Logger, keyType: opts.KeyType, params: opts.Seal,
		limiter: opts.Limiter, remember: opts.Remember, maxRem: opts.RememberMax,
		tokenTTL: opts.TokenTTL, orgRoots: opts.OrgRoots, minPW: opts.MinPasswordLen, domains: opts.Domains,
		rand: rand.Reader, stop: make(chan struct{}), done: make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = systemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	kt, err := ca.ParseKeyType(string(s.keyType))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	s.keyType = kt
	if s.params == (seal.Params{}) {
		s.params = seal.DefaultParams()
	}
	if err := s.params.Validate(); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if s.limiter == nil {
		s.limiter = seal.NewLimiter(2)
	}
	if s.remember <= 0 {
		s.remember = DefaultRemember
	}
	if s.maxRem <= 0 {
		s.maxRem = DefaultMaxRemember
	}
	s.remember = min(s.remember, s.maxRem)
	if s.tokenTTL <= 0 {
		s.tokenTTL = DefaultTokenTTL
	}
	if s.minPW <= 0 {
		s.minPW = 8
	}
	s.keys = newKeyCache()
	s.cache = newUnlockCache(s.clock, max(opts.IdleTimeout, 0))
	s.cache.gone = s.locked
	s.backoff = newBackoff(s.clock, BackoffBase, BackoffMax)
	go s.sweeper()
	return s, nil
}

// sweeper wipes expired master keys once a minute, so they do not wait in
// memory for the next request.
func (s *Service) sweeper() {
	defer close(s.done)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.cache.sweep()
		}
	}
}

// Close locks every Digital ID (wiping the keys) and stops the sweeper.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.cache.wipeAll()
		s.keys.dropAll(true)
	})
	return nil
}

// Authenticate checks a mailbox login against the upstream server.
func (s *Service) Authenticate(ctx context.Context, email string, password Secret) error {
	return s.upstream.Authenticate(ctx, email, password)
}

// NormalizeEmail returns the plain, lower-cased address, or ErrBadEmail.
func NormalizeEmail(email string) (string, error) {
	e := strings.TrimSpace(email)
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" || strings.ContainsAny(e, "<> \"") {
		return "", fmt.Errorf("%w: %q", ErrBadEmail, email)
	}
	return strings.ToLower(e), nil
}

// allowed checks email's domain against Options.Domains.
func (s *Service) allowed(email string) error {
	if len(s.domains) == 0 {
		return nil
	}
	domain := email[strings.LastIndexByte(email, '@')+1:]
	for _, d := range s.domains {
		if strings.EqualFold(strings.TrimSuffix(d, "."), domain) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrDomain, domain)
}

// CreateToken issues a security token for email and purpose, redeemable
// until the returned time. ttl 0 means the default lifetime. Only an HMAC of
// the token is stored; the token itself goes back to the caller, once.
func (s *Service) CreateToken(ctx context.Context, email string, purpose Purpose, ttl time.Duration) (Secret, time.Time, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := s.allowed(email); err != nil {
		return "", time.Time{}, err
	}
	if !purpose.Valid() {
		return "", time.Time{}, fmt.Errorf("token purpose %q: want enroll or recover", purpose)
	}
	if ttl == 0 {
		ttl = s.tokenTTL
	}
	if ttl < time.Minute || ttl > MaxTokenTTL {
		return "", time.Time{}, fmt.Errorf("token lifetime %s: want between 1m and %s", ttl, MaxTokenTTL)
	}
	key, err := s.tokenSecret(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, err := NewToken(s.rand)
	if err != nil {
		return "", time.Time{}, err
	}
	data, err := tokenData(string(tok))
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.clock.Now()
	info := tokenInfo{Hash: tokenHash(key, data), Email: email, Purpose: purpose, Created: now, Expires: now.Add(ttl)}
	if err := s.rec.InsertToken(ctx, info); err != nil {
		return "", time.Time{}, fmt.Errorf("store token for %s: %w", email, err)
	}
	// Tokens long expired are of no use to anyone; keep the table small.
	if err := s.rec.PruneTokens(ctx, now.Add(-30*24*time.Hour)); err != nil {
		s.log.Warn("prune expired tokens", "err", err)
	}
	if err := s.rec.Audit(ctx, "admin", "token.create", email+" "+string(purpose), now); err != nil {
		s.log.Warn("audit token creation", "err", err)
	}
	s.log.Info("security token issued", "email", email, "purpose", string(purpose), "expires", info.Expires)
	return tok, info.Expires, nil
}

const tokenSecretSetting = "identity.token_hmac_key"

// tokenSecret returns the server's token HMAC key, created on first use and
// kept in the store's settings (so every gateway instance agrees).
func (s *Service) tokenSecret(ctx context.Context) ([]byte, error) {
	s.secretMu.Lock()
	defer s.secretMu.Unlock()
	if s.secret != nil {
		return s.secret, nil
	}
	v, err := s.rec.Setting(ctx, tokenSecretSetting)
	if errors.Is(err, errNotFound) {
		fresh := make([]byte, 32)
		if _, err := io.ReadFull(rand.Reader, fresh); err != nil {
			return nil, fmt.Errorf("draw token secret: %w", err)
		}
		v, err = s.rec.SetSettingOnce(ctx, tokenSecretSetting, fresh)
	}
	if err != nil {
		return nil, fmt.Errorf("load token secret: %w", err)
	}
	if len(v) < 32 {
		return nil, fmt.Errorf("token secret in the store is %d bytes, want 32", len(v))
	}
	s.secret = v
	return v, nil
}

// redeemable checks a typed token for email and purpose without consuming
// it: the check symbol first, then the store. It returns the token's hash.
func (s *Service) redeemable(ctx context.Context, token Secret, email string, purpose Purpose) ([]byte, tokenInfo, error) {
	data, err := tokenData(string(token))
	if err != nil {
		return nil, tokenInfo{}, err
	}
	key, err := s.tokenSecret(ctx)
	if err != nil {
		return nil, tokenInfo{}, err
	}
	hash := tokenHash(key, data)
	info, err := s.rec.Token(ctx, hash)
	if errors.Is(err, errNotFound) {
		return nil, tokenInfo{}, ErrTokenUnknown
	}
	if err != nil {
		return nil, tokenInfo{}, fmt.Errorf("look up token: %w", err)
	}
	if purpose == "" {
		purpose = info.Purpose
	}
	if err := info.check(email, purpose, s.clock.Now()); err != nil {
		return nil, tokenInfo{}, err
	}
	return hash, info, nil
}

// whyGone explains, after an atomic consume failed, why the token could not
// be redeemed (another redemption won the race, or it expired meanwhile).
func (s *Service) whyGone(ctx context.Context, hash []byte, email string, purpose Purpose) error {
	info, err := s.rec.Token(ctx, hash)
	if err != nil {
		return ErrTokenUnknown
	}
	if err := info.check(email, purpose, s.clock.Now()); err != nil {
		return err
	}
	return ErrTokenUsed
}
