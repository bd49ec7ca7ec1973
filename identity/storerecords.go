package identity

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"smimeproxy/crypto/ca"
	"smimeproxy/store"
)

// New returns a Service keeping its records in st.
func New(st store.Store, opts Options) (*Service, error) {
	if st == nil {
		return nil, errors.New("identity: a store is required")
	}
	return newService(storeRecords{st}, opts)
}

// storeRecords keeps identity's records in a store.Store. What the store's
// Identity has no field for (the source, the root and chain to show, and
// whether a revoked ID was superseded by recovery) lives in a JSON setting
// per ID, written in the same transaction.
type storeRecords struct{ st store.Store }

// storeOps is what storeRecords and storeTx share: the calls of store.Tx.
type storeOps struct{ tx store.Tx }

var (
	_ records   = storeRecords{}
	_ recordsTx = storeOps{}
)

func metaKey(id string) string { return "identity.meta." + id }

// idMeta is the per-ID setting.
type idMeta struct {
	Source     Source   `json:"source"`
	Superseded bool     `json:"superseded,omitempty"`
	Root       []byte   `json:"root,omitempty"`
	Chain      [][]byte `json:"chain,omitempty"`
}

func toStoreState(s State) store.IdentityState {
	switch s {
	case StatePending:
		return store.StatePendingTrust
	case StateActive:
		return store.StateActive
	}
	return store.StateRevoked // revoked, and superseded (marked in idMeta)
}

func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound
	}
	return err
}

func (o storeOps) identity(ctx context.Context, si store.Identity) (idRecord, error) {
	r := idRecord{ID: si.ID, Email: si.Email, Name: si.Name, Master: si.MasterKeyWrap, Created: si.CreatedAt, Updated: si.UpdatedAt}
	var m idMeta
	raw, err := o.tx.GetSetting(ctx, metaKey(si.ID))
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &m); err != nil {
			return idRecord{}, fmt.Errorf("details of Digital ID %s: %w", si.ID, err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return idRecord{}, err
	}
	r.Source, r.RootDER, r.Chain = m.Source, m.Root, m.Chain
	switch si.State {
	case store.StatePendingTrust:
		r.State = StatePending
	case store.StateActive:
		r.State = StateActive
	default:
		r.State = StateRevoked
		if m.Superseded {
			r.State = StateSuperseded
		}
	}
	return r, nil
}

func (s storeRecords) Setting(ctx context.Context, name string) ([]byte, error) {
	v, err := s.st.GetSetting(ctx, name)
	return v, notFound(err)
}

func (s storeRecords) SetSettingOnce(ctx context.Context, name string, value []byte) ([]byte, error) {
	return s.st.InitSetting(ctx, name, value)
}

func (s storeRecords) InsertToken(ctx context.Context, t tokenInfo) error {
	return s.st.CreateToken(ctx, store.Token{Hash: t.Hash, Email: t.Email, Purpose: store.TokenPurpose(t.Purpose), CreatedAt: t.Created, ExpiresAt: t.Expires})
}

func (s storeRecords) Token(ctx context.Context, hash []byte) (tokenInfo, error) {
	t, err := s.st.GetToken(ctx, hash)
	if err != nil {
		return tokenInfo{}, notFound(err)
	}
	return tokenInfo{Hash: t.Hash, Email: t.Email, Purpose: Purpose(t.Purpose), Created: t.CreatedAt, Expires: t.ExpiresAt, Used: t.UsedAt}, nil
}

func (s storeRecords) PruneTokens(ctx context.Context, before time.Time) error {
	_, err := s.st.PruneTokens(ctx, before)
	return err
}

func (s storeRecords) Identity(ctx context.Context, id string) (idRecord, error) {
	si, err := s.st.GetIdentity(ctx, id)
	if err != nil {
		return idRecord{}, notFound(err)
	}
	return storeOps{s.st}.identity(ctx, si)
}

func (s storeRecords) IdentitiesByEmail(ctx context.Context, email string) ([]idRecord, error) {
	all, err := s.Identities(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(r idRecord) bool { return r.Email != store.NormalizeEmail(email) }), nil
}

func (s storeRecords) Identities(ctx context.Context) ([]idRecord, error) {
	list, err := s.st.ListIdentities(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]idRecord, 0, len(list))
	for _, si := range list {
		r, err := storeOps{s.st}.identity(ctx, si)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s storeRecords) Keys(ctx context.Context, identityID string) ([]keyRecord, error) {
	list, err := s.st.ListKeys(ctx, identityID, "")
	if err != nil {
		return nil, err
	}
	out := make([]keyRecord, 0, len(list))
	for _, k := range slices.Backward(list) { // the store lists newest first
		r := keyRecord{ID: k.ID, IdentityID: k.IdentityID, Use: KeyUse(k.Purpose), Status: KeyCurrent, CertDER: k.CertDER, Sealed: k.SealedKey, Created: k.CreatedAt}
		if k.Status == store.KeySuperseded {
			r.Status = KeyHistory
		}
		if r.Use == UseEncrypt {
			e, err := s.st.GetEscrow(ctx, k.ID)
			switch {
			case err == nil:
				r.Escrow = e.Envelope
			case !errors.Is(err, store.ErrNotFound):
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, nil
}

var certSources = map[CertSource]store.CertSource{CertOurs: store.SourceEnrolled, CertImported: store.SourceImported, CertHarvested: store.SourceHarvested}

func (s storeRecords) Certificates(ctx context.Context, email, owner string) ([]certRecord, error) {
	list, err := s.st.CertsByEmail(ctx, email, owner)
	if err != nil {
		return nil, err
	}
	out := make([]certRecord, 0, len(list))
	for _, c := range list {
		r := certRecord{Owner: c.Owner, Email: c.Email, CertDER: c.CertDER, Caps: c.Capabilities, Updated: c.LastSeen}
		for ours, theirs := range certSources {
			if theirs == c.Source {
				r.Source = ours
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func (s storeRecords) PutCertificate(ctx context.Context, c certRecord) error {
	return s.st.PutCert(ctx, store.DirectoryCert{Email: c.Email, CertDER: c.CertDER, Source: certSources[c.Source],
		Capabilities: c.Caps, FirstSeen: c.Updated, LastSeen: c.Updated, Owner: c.Owner})
}

func trustScope(owner string) string {
	if owner == "" {
		return store.ScopeOrg
	}
	return owner
}

// storeFingerprint turns ca.Fingerprint's form into the store's.
func storeFingerprint(fp string) string { return strings.ToLower(strings.ReplaceAll(fp, ":", "")) }

func (s storeRecords) TrustedRoots(ctx context.Context, owner string) ([]trustRecord, error) {
	list, err := s.st.ListTrustRoots(ctx, trustScope(owner))
	if err != nil {
		return nil, err
	}
	out := make([]trustRecord, 0, len(list))
	for _, r := range list {
		c, err := x509.ParseCertificate(r.CertDER)
		if err != nil {
			return nil, fmt.Errorf("trusted root %s: %w", r.Fingerprint, err)
		}
		out = append(out, trustRecord{Owner: owner, Fingerprint: ca.Fingerprint(c), CertDER: r.CertDER, Added: r.AcceptedAt})
	}
	return out, nil
}

func (s storeRecords) RemoveTrustedRoot(ctx context.Context, owner, fingerprint string) error {
	return notFound(s.st.RemoveTrustRoot(ctx, trustScope(owner), storeFingerprint(fingerprint)))
}

func (s storeRecords) Audit(ctx context.Context, actor, action, subject string, at time.Time) error {
	return storeOps{s.st}.Audit(ctx, actor, action, subject, at)
}

func (o storeOps) Audit(ctx context.Context, actor, action, subject string, at time.Time) error {
	return o.tx.Audit(ctx, store.AuditEntry{Time: at, Actor: actor, Action: action, Subject: subject})
}

func (s storeRecords) Tx(ctx context.Context, fn func(recordsTx) error) error {
	return s.st.Tx(ctx, func(tx store.Tx) error { return fn(storeOps{tx}) })
}

func (o storeOps) ConsumeToken(ctx context.Context, hash []byte, email string, purpose Purpose, usedBy string, now time.Time) error {
	_, err := o.tx.ConsumeToken(ctx, store.TokenUse{Hash: hash, Email: email, Purpose: store.TokenPurpose(purpose), UsedBy: usedBy, At: now})
	for _, e := range []error{store.ErrTokenNotFound, store.ErrTokenUsed, store.ErrTokenExpired, store.ErrTokenMailbox, store.ErrTokenPurpose} {
		if errors.Is(err, e) {
			return errTokenGone
		}
	}
	return err
}

func (o storeOps) putMeta(ctx context.Context, r idRecord) error {
	raw, err := json.Marshal(idMeta{Source: r.Source, Superseded: r.State == StateSuperseded, Root: r.RootDER, Chain: r.Chain})
	if err != nil {
		return err
	}
	return o.tx.PutSetting(ctx, metaKey(r.ID), raw)
}

func (o storeOps) InsertIdentity(ctx context.Context, r idRecord) error {
	fp := ""
	if len(r.RootDER) > 0 {
		fp = store.Fingerprint(r.RootDER)
	}
	err := o.tx.CreateIdentity(ctx, store.Identity{ID: r.ID, Email: r.Email, Name: r.Name, State: toStoreState(r.State),
		MasterKeyWrap: r.Master, RootFingerprint: fp, CreatedAt: r.Created, UpdatedAt: r.Updated})
	if errors.Is(err, store.ErrConflict) {
		return errConflict
	}
	if err != nil {
		return err
	}
	return o.putMeta(ctx, r)
}

func (o storeOps) SetIdentityState(ctx context.Context, id string, from []State, to State, now time.Time) error {
	si, err := o.tx.GetIdentity(ctx, id)
	if err != nil {
		return notFound(err)
	}
	r, err := o.identity(ctx, si)
	if err != nil {
		return err
	}
	if !slices.Contains(from, r.State) {
		return errConflict
	}
	si.State, si.UpdatedAt = toStoreState(to), now
	if err := o.tx.UpdateIdentity(ctx, si); err != nil {
		return err
	}
	r.State = to
	return o.putMeta(ctx, r)
}

func (o storeOps) InsertKey(ctx context.Context, k keyRecord) error {
	c, err := x509.ParseCertificate(k.CertDER)
	if err != nil {
		return fmt.Errorf("certificate of key %s: %w", k.ID, err)
	}
	status := store.KeyCurrent
	if k.Status == KeyHistory {
		status = store.KeySuperseded
	}
	err = o.tx.AddKey(ctx, store.Key{ID: k.ID, IdentityID: k.IdentityID, Purpose: store.KeyPurpose(k.Use), CertDER: k.CertDER,
		SealedKey: k.Sealed, Serial: hex.EncodeToString(c.SerialNumber.Bytes()), NotAfter: c.NotAfter, Status: status, CreatedAt: k.Created})
	if err != nil {
		return err
	}
	if len(k.Escrow) > 0 {
		return o.tx.PutEscrow(ctx, store.Escrow{KeyID: k.ID, Envelope: k.Escrow, CreatedAt: k.Created})
	}
	return nil
}

func (o storeOps) PutTrustedRoot(ctx context.Context, t trustRecord) error {
	return o.tx.AddTrustRoot(ctx, store.TrustRoot{CertDER: t.CertDER, Scope: trustScope(t.Owner), AcceptedAt: t.Added})
}
