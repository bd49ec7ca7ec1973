package imap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"

	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
)

// ViewKeys is what the S/MIME viewer needs of the users' Digital IDs;
// *identity.Service provides it.
type ViewKeys interface {
	// DecryptionKeys returns every encryption key of user's Digital ID,
	// current first. A locked ID gives an error wrapping identity.ErrLocked.
	DecryptionKeys(ctx context.Context, user string) ([]smime.KeyPair, error)
	// TrustPool returns the roots user's incoming signatures are checked
	// against.
	TrustPool(ctx context.Context, user string) (*x509.CertPool, error)
	// Harvest keeps the certificates of a valid signature in user's
	// directory, so replies can be encrypted.
	Harvest(ctx context.Context, user string, v *smime.VerifyResult) ([]string, error)
}

var _ ViewKeys = (*identity.Service)(nil)

// UnlockReporter may be implemented by a ViewKeys whose Digital IDs lock
// by themselves (idle or absolute expiry) without telling anyone: a
// cached view that needed the key is then served only while Unlocked
// holds, and the user's views are wiped as soon as it does not. The check
// must be cheap (memory only); it runs on every cache hit. Without it the
// viewer asks DecryptionKeys again at most every KeyRecheck per user.
type UnlockReporter interface {
	Unlocked(user string) bool
}

// Clock gives the time signatures are checked at; tests set one.
type Clock interface{ Now() time.Time }

// ViewerOptions configures NewSMIMEViewer.
type ViewerOptions struct {
	Keys ViewKeys // required
	// CacheBytes bounds the decrypted views kept in memory (0:
	// DefaultCacheBytes; negative: no cache).
	CacheBytes int64
	// KeyRecheck is how long a cache hit of a decrypted view trusts that
	// the user's Digital ID is still unlocked before DecryptionKeys is
	// asked again (IDs lock by themselves when idle, and nothing tells the
	// viewer). 0: 30 s; negative: on every hit. Not used when Keys is an
	// UnlockReporter.
	KeyRecheck time.Duration
	Clock      Clock        // nil: the system clock
	Logger     *slog.Logger // nil: slog.Default()
}

// DefaultKeyRecheck is ViewerOptions.KeyRecheck's default.
const DefaultKeyRecheck = 30 * time.Second

// SMIMEViewer is the Viewer that decrypts and verifies messages that are
// S/MIME at their top level (RFC 8551) with the reading user's Digital ID,
// and states the outcome in the StatusHeader field. It is safe for
// concurrent use.
type SMIMEViewer struct {
	keys    ViewKeys
	cache   *viewCache // nil: no cache
	clock   Clock
	log     *slog.Logger
	recheck time.Duration

	mu       sync.Mutex
	keysSeen map[string]time.Time // user → when DecryptionKeys last succeeded
}

var _ Viewer = (*SMIMEViewer)(nil)

// NewSMIMEViewer returns a viewer for opts.
func NewSMIMEViewer(opts ViewerOptions) (*SMIMEViewer, error) {
	if opts.Keys == nil {
		return nil, errors.New("imap viewer: no key source")
	}
	v := &SMIMEViewer{keys: opts.Keys, clock: opts.Clock, log: opts.Logger, recheck: opts.KeyRecheck,
		keysSeen: map[string]time.Time{}}
	if v.recheck == 0 {
		v.recheck = DefaultKeyRecheck
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	switch {
	case opts.CacheBytes == 0:
		v.cache = newViewCache(DefaultCacheBytes)
	case opts.CacheBytes > 0:
		v.cache = newViewCache(opts.CacheBytes)
	}
	return v, nil
}

func (v *SMIMEViewer) now() time.Time {
	if v.clock == nil {
		return time.Now()
	}
	return v.clock.Now()
}

// isTopSMIME reports whether a top-level kind is one the viewer opens.
func isTopSMIME(k smime.Kind) bool {
	return k == smime.Signed || k == smime.SignedOpaque || k == smime.Enveloped || k == smime.AuthEnveloped
}

// Needed implements Viewer: only a whole message that is S/MIME at its top
// level is fetched and opened. An S/MIME part inside a multipart/mixed
// (EFAIL's direct exfiltration, a signed part wrapped by an attacker) is
// never looked into.
func (v *SMIMEViewer) Needed(bs imap.BodyStructure) bool {
	var mt string
	var params map[string]string
	switch b := bs.(type) {
	case *imap.BodyStructureSinglePart:
		mt, params = b.Type+"/"+b.Subtype, b.Params
	case *imap.BodyStructureMultiPart:
		mt = "multipart/" + b.Subtype
		if b.Extended != nil {
			params = b.Extended.Params
		}
	default:
		return false
	}
	ct := mime.FormatMediaType(strings.ToLower(mt), params)
	if ct == "" {
		ct = strings.ToLower(mt) // parameters that do not format; the type still counts
		for k, val := range params {
			ct += "; " + k + "=" + val
		}
	}
	return isTopSMIME(smime.Classify(ct))
}

// FilterHeader implements Viewer: the header block of a plain message
// loses only the fields reserved for the proxy.
func (v *SMIMEViewer) FilterHeader(header []byte) []byte { return StripStatus(header) }

// View implements Viewer. The message comes back decrypted and verified
// with a status field (see StatusHeader); a message that cannot be opened
// comes back as it arrived, with a status field saying why. Only a locked
// Digital ID (identity.ErrLocked) and a cancelled ctx are errors.
func (v *SMIMEViewer) View(ctx context.Context, key MessageKey, raw []byte) (*View, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Forged status fields go first: they must not reach the output, and
	// an obsolete "Name :" spelling must not make the message unreadable.
	raw = StripStatus(raw)
	kind := smime.Classify(topContentType(raw))
	if !isTopSMIME(kind) {
		return &View{Raw: raw}, nil
	}
	roots, err := v.keys.TrustPool(ctx, key.User)
	if err != nil {
		// No roots: every signature reads as untrusted, which is true.
		v.log.Warn("trust pool unavailable", "uid", key.UID, "err", err)
		roots = nil
	}
	opts := smime.VerifyOptions{Roots: roots, Now: v.now()}
	var keys []smime.KeyPair
	needKey := kind == smime.Enveloped || kind == smime.AuthEnveloped
	if needKey {
		if keys, err = v.keys.DecryptionKeys(ctx, key.User); err != nil {
			return v.keyFailure(key, raw, err)
		}
	}
	o, err := smime.Open(raw, keys, opts)
	if err != nil && !needKey && errors.Is(err, smime.ErrNoMatchingRecipient) {
		// A signed envelope: the key is needed after all.
		needKey = true
		if keys, err = v.keys.DecryptionKeys(ctx, key.User); err != nil {
			return v.keyFailure(key, raw, err)
		}
		o, err = smime.Open(raw, keys, opts)
	}
	if err != nil {
		v.log.Info("S/MIME message served as it arrived", "mailbox", key.Mailbox, "uid", key.UID, "err", err)
		view := &View{Raw: withStatus(Status{Failed: failureReason(err)}, raw)}
		v.put(key, view, false)
		return view, nil
	}
	if needKey {
		v.keysUsed(key.User)
	}
	st := statusOf(o)
	v.harvest(ctx, key, o)
	view := &View{Raw: render(st, raw, o)}
	v.put(key, view, needKey)
	return view, nil
}

// keyFailure answers a View whose key could not be had: a locked ID is
// the caller's error (never a stand-in body the client would keep); a
// mailbox without a usable Digital ID sees the message as it arrived.
func (v *SMIMEViewer) keyFailure(key MessageKey, raw []byte, err error) (*View, error) {
	if errors.Is(err, identity.ErrLocked) {
		return nil, fmt.Errorf("view message %d: %w", key.UID, err)
	}
	if noDigitalID(err) {
		// Not cached: after enrolment the message decrypts.
		return &View{Raw: withStatus(Status{Failed: "no-digital-id"}, raw)}, nil
	}
	return nil, fmt.Errorf("view message %d: keys: %w", key.UID, err)
}

// noDigitalID reports whether err means the mailbox has no usable
// Digital ID: none enrolled, its root not accepted yet, or a login that
// is not an address (such a mailbox can have none).
func noDigitalID(err error) bool {
	return errors.Is(err, identity.ErrNoIdentity) || errors.Is(err, identity.ErrPendingTrust) ||
		errors.Is(err, identity.ErrBadEmail)
}

func (v *SMIMEViewer) put(key MessageKey, view *View, needKey bool) {
	if v.cache != nil {
		v.cache.put(key, view, needKey)
	}
}

// harvest keeps the certificates of every valid signature layer. A
// failure costs only the harvest, never the message.
func (v *SMIMEViewer) harvest(ctx context.Context, key MessageKey, o *smime.Opened) {
	for _, l := range o.Layers {
		if l.Verify == nil || !l.Verify.Valid {
			continue
		}
		if _, err := v.keys.Harvest(ctx, key.User, l.Verify); err != nil {
			v.log.Warn("certificate harvest failed", "uid", key.UID, "err", err)
		}
	}
}

// statusOf states what Open found.
func statusOf(o *smime.Opened) Status {
	st := Status{Decrypted: o.Encrypted(), Valid: o.AllValid()}
	for _, l := range o.Layers {
		if l.Verify == nil {
			continue
		}
		st.Signed = true
		if !l.Verify.Valid && st.SigReason == "" {
			st.SigReason = signatureReason(l.Verify)
		}
	}
	if sig := o.Signature(); sig != nil {
		st.FromMismatch = !sig.FromMatches
		if sig.Signer != nil {
			st.Signer = signerAddress(sig, o.Header.Get("From"))
		}
	}
	if st.Decrypted && !st.Valid {
		for _, l := range o.Layers {
			if l.Decrypted != nil && !l.Decrypted.Authenticated {
				st.NoIntegrity = true
			}
		}
	}
	return st
}

// signerAddress names the signer: the From address when the certificate
// carries it, else the certificate's first address.
func signerAddress(sig *smime.VerifyResult, from string) string {
	addrs := smime.CertAddresses(sig.Signer)
	if sig.FromMatches {
		if a, err := mail.ParseAddress(from); err == nil {
			for _, c := range addrs {
				if strings.EqualFold(c, a.Address) {
					return printableAddress(strings.ToLower(c))
				}
			}
		}
	}
	if len(addrs) == 0 {
		return ""
	}
	return printableAddress(strings.ToLower(addrs[0]))
}

// render builds what the client reads. A detached signature that no
// envelope follows stays intact, so the client can check it too: at the
// top level the message passes byte for byte (status field added, forged
// ones removed); inside an envelope the decrypted multipart/signed is
// kept. Otherwise the innermost entity follows the outer header fields.
// Only the entity's Content-* fields join the outer ones.
func render(st Status, raw []byte, o *smime.Opened) []byte {
	keep := -1
	for i := len(o.Layers) - 1; i >= 0; i-- {
		if o.Layers[i].Decrypted != nil {
			break
		}
		if o.Layers[i].Kind == smime.Signed {
			keep = i
		}
	}
	if keep == 0 {
		return withStatus(st, raw)
	}
	entity := o.Entity
	if keep > 0 {
		prev := o.Layers[keep-1]
		if prev.Decrypted != nil {
			entity = prev.Decrypted.Entity
		} else {
			entity = prev.Verify.Entity
		}
	}
	entity = contentFieldsOnly(entity)
	var b bytes.Buffer
	b.Grow(len(entity) + 4096)
	b.WriteString(StatusHeader + ": " + st.String() + "\r\n")
	// Compose writes to a bytes.Buffer, which cannot fail.
	_ = smime.Compose(&b, stripStatusFields(o.Header), entity)
	return b.Bytes()
}

// withStatus returns raw with forged status fields removed and the
// proxy's own added first, in raw's line-end style.
func withStatus(st Status, raw []byte) []byte {
	eol := "\r\n"
	if i := bytes.IndexByte(raw, '\n'); i >= 0 && (i == 0 || raw[i-1] != '\r') {
		eol = "\n"
	}
	line := StatusHeader + ": " + st.String() + eol
	body := StripStatus(raw)
	out := make([]byte, 0, len(line)+len(body))
	return append(append(out, line...), body...)
}

// topContentType returns the Content-Type of a whole message, "" when it
// has none or the header cannot be read.
func topContentType(raw []byte) string {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw[:headerEnd(raw)])))
	if err != nil {
		return ""
	}
	return h.Get("Content-Type")
}

// headerEnd returns the length of raw's header block including the empty
// line that ends it (all of raw when there is none).
func headerEnd(raw []byte) int {
	for pos := 0; pos < len(raw); {
		end := bytes.IndexByte(raw[pos:], '\n')
		if end < 0 {
			return len(raw)
		}
		line := raw[pos : pos+end]
		pos += end + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return pos
		}
	}
	return len(raw)
}
