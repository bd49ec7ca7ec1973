package identity

import "strings"

// Unlocked reports whether email's current Digital ID is unlocked now. It
// looks at memory only (no store access, cheap enough for every cache hit
// of the IMAP proxy) and is not a use: it does not push back the idle
// expiry. An address that is not a plain e-mail address is never unlocked.
func (s *Service) Unlocked(email string) bool {
	e, err := NormalizeEmail(email)
	if err != nil {
		return false
	}
	return s.cache.unlocked(e)
}

// OnLock registers f to be told the mailbox (lower-cased, as NormalizeEmail
// gives it) whenever an unlocked Digital ID locks: Lock, Revoke, recovery
// superseding it, idle or absolute expiry (noticed by the next use, the
// Unlocked check, or the sweeper within a minute), Close, and revocation
// or recovery by another gateway instance on the same store (noticed by
// the next use after KeyRecheck). Whoever keeps
// plaintext obtained with the key (the IMAP proxy's view cache) drops it
// there. f runs on the goroutine that locked, holding no lock of the
// service, so it may call back into it; it should return quickly.
func (s *Service) OnLock(f func(email string)) {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	s.onLock = append(s.onLock, f)
}

// locked drops email's opened keys and tells the OnLock listeners that
// its key was wiped.
func (s *Service) locked(email string) {
	s.keys.drop(strings.ToLower(email))
	s.lockMu.Lock()
	fs := append([]func(string){}, s.onLock...)
	s.lockMu.Unlock()
	email = strings.ToLower(email)
	for _, f := range fs {
		f(email)
	}
}
