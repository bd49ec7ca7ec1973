package identity

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

// memRecords is an in-memory records for unit tests: one lock, and a
// transaction works on a copy that replaces the state only on success.
type memRecords struct {
	mu sync.Mutex
	st memState
}

type memState struct {
	settings map[string][]byte
	tokens   map[string]tokenInfo
	ids      []idRecord
	keys     []keyRecord
	certs    []certRecord
	trust    []trustRecord
	audit    []string
}

func newMemRecords() *memRecords {
	return &memRecords{st: memState{settings: map[string][]byte{}, tokens: map[string]tokenInfo{}}}
}

func (s memState) clone() memState {
	return memState{
		settings: maps.Clone(s.settings), tokens: maps.Clone(s.tokens),
		ids: slices.Clone(s.ids), keys: slices.Clone(s.keys),
		certs: slices.Clone(s.certs), trust: slices.Clone(s.trust), audit: slices.Clone(s.audit),
	}
}

func (m *memRecords) Setting(_ context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.st.settings[name]
	if !ok {
		return nil, errNotFound
	}
	return v, nil
}

func (m *memRecords) SetSettingOnce(_ context.Context, name string, value []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.st.settings[name]; ok {
		return v, nil
	}
	m.st.settings[name] = value
	return value, nil
}

func (m *memRecords) InsertToken(_ context.Context, t tokenInfo) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.st.tokens[string(t.Hash)]; ok {
		return errConflict
	}
	m.st.tokens[string(t.Hash)] = t
	return nil
}

func (m *memRecords) Token(_ context.Context, hash []byte) (tokenInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.st.tokens[string(hash)]
	if !ok {
		return tokenInfo{}, errNotFound
	}
	return t, nil
}

func (m *memRecords) PruneTokens(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	maps.DeleteFunc(m.st.tokens, func(_ string, t tokenInfo) bool { return t.Expires.Before(before) })
	return nil
}

func (m *memRecords) Identity(_ context.Context, id string) (idRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.st.ids {
		if r.ID == id {
			return r, nil
		}
	}
	return idRecord{}, errNotFound
}

func (m *memRecords) IdentitiesByEmail(_ context.Context, email string) ([]idRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []idRecord
	for _, r := range m.st.ids {
		if r.Email == email {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memRecords) Identities(context.Context) ([]idRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.st.ids), nil
}

func (m *memRecords) Keys(_ context.Context, identityID string) ([]keyRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []keyRecord
	for _, k := range m.st.keys {
		if k.IdentityID == identityID {
			out = append(out, k)
		}
	}
	return out, nil
}

func (m *memRecords) Certificates(_ context.Context, email, owner string) ([]certRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []certRecord
	for _, c := range m.st.certs {
		if c.Email == email && (c.Owner == "" || c.Owner == owner) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (m *memRecords) PutCertificate(_ context.Context, c certRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, o := range m.st.certs {
		if o.Owner == c.Owner && o.Email == c.Email && bytes.Equal(o.CertDER, c.CertDER) {
			m.st.certs[i] = c
			return nil
		}
	}
	m.st.certs = append(m.st.certs, c)
	return nil
}

func (m *memRecords) TrustedRoots(_ context.Context, owner string) ([]trustRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []trustRecord
	for _, t := range m.st.trust {
		if t.Owner == owner {
			out = append(out, t)
		}
	}
	return out, nil
}

func (m *memRecords) RemoveTrustedRoot(_ context.Context, owner, fingerprint string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.st.trust)
	m.st.trust = slices.DeleteFunc(m.st.trust, func(t trustRecord) bool { return t.Owner == owner && t.Fingerprint == fingerprint })
	if len(m.st.trust) == n {
		return errNotFound
	}
	return nil
}

func (m *memRecords) Tx(ctx context.Context, fn func(recordsTx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := &memTx{st: m.st.clone()}
	if err := fn(tx); err != nil {
		return err
	}
	m.st = tx.st
	return nil
}

type memTx struct{ st memState }

func (m *memRecords) Audit(_ context.Context, actor, action, subject string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.audit = append(m.st.audit, actor+" "+action+" "+subject)
	return nil
}

func (t *memTx) Audit(_ context.Context, actor, action, subject string, _ time.Time) error {
	t.st.audit = append(t.st.audit, actor+" "+action+" "+subject)
	return nil
}

func (t *memTx) ConsumeToken(_ context.Context, hash []byte, email string, purpose Purpose, _ string, now time.Time) error {
	tok, ok := t.st.tokens[string(hash)]
	if !ok || tok.check(email, purpose, now) != nil {
		return errTokenGone
	}
	tok.Used = now
	t.st.tokens[string(hash)] = tok
	return nil
}

func (t *memTx) InsertIdentity(_ context.Context, r idRecord) error {
	for _, o := range t.st.ids {
		if o.ID == r.ID || (o.Email == r.Email && o.State.live() && r.State.live()) {
			return errConflict
		}
	}
	t.st.ids = append(t.st.ids, r)
	return nil
}

func (t *memTx) SetIdentityState(_ context.Context, id string, from []State, to State, now time.Time) error {
	for i, o := range t.st.ids {
		if o.ID == id {
			if !slices.Contains(from, o.State) {
				return errConflict
			}
			t.st.ids[i].State, t.st.ids[i].Updated = to, now
			return nil
		}
	}
	return errNotFound
}

func (t *memTx) InsertKey(_ context.Context, k keyRecord) error {
	t.st.keys = append(t.st.keys, k)
	return nil
}

func (t *memTx) PutTrustedRoot(_ context.Context, r trustRecord) error {
	for _, o := range t.st.trust {
		if o.Owner == r.Owner && o.Fingerprint == r.Fingerprint {
			return nil
		}
	}
	t.st.trust = append(t.st.trust, r)
	return nil
}
