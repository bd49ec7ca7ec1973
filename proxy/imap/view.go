package imap

import (
	"bytes"
	"context"

	"github.com/emersion/go-imap/v2"
)

// MessageKey names one upstream message for the view cache. UIDs are only
// unique within a mailbox and UIDVALIDITY, so all four parts are needed.
type MessageKey struct {
	User        string // the login the upstream accepted, as the client sent it
	Mailbox     string // upstream mailbox name
	UIDValidity uint32
	UID         imap.UID
}

// View is what the client sees of a message that the Viewer transformed.
type View struct {
	// Raw is the whole message as the client receives it (BODY[]); every
	// other FETCH item (HEADER, TEXT, parts, BODYSTRUCTURE, ENVELOPE,
	// RFC822.SIZE) is computed from these bytes. It must not be modified
	// after it is returned: the proxy and the cache share it.
	Raw []byte
}

// Viewer turns upstream messages into what the client sees. The proxy
// calls it from many sessions at once; implementations are safe for
// concurrent use.
type Viewer interface {
	// Needed reports, from the upstream BODYSTRUCTURE (top-level type,
	// subtype and parameters), whether the whole message must be fetched
	// and given to View (S/MIME at the top level), or whether it can stream
	// through with only its header block passed through FilterHeader.
	Needed(bs imap.BodyStructure) bool
	// Lookup returns the cached view of key, or nil. A hit saves the proxy
	// the download of the whole message.
	Lookup(key MessageKey) *View
	// View transforms the whole raw upstream message (BODY[]) for key.User.
	// When the user's Digital ID is needed but locked, the error wraps
	// identity.ErrLocked; the proxy then answers NO [UNAVAILABLE] with the
	// unlock URL. Other errors fail the FETCH with a fixed text; a message
	// that cannot be decrypted should rather come back as a View of the
	// original with a status header saying why, so a sync never stalls.
	View(ctx context.Context, key MessageKey, raw []byte) (*View, error)
	// FilterHeader returns the header block of a message that streams
	// through (including its blank separator line), without status headers
	// forged by outsiders. It may return header itself when nothing is
	// removed. The proxy reports sizes reduced by what was removed.
	FilterHeader(header []byte) []byte
	// Wipe drops every cached view of user (called when the Digital ID is
	// locked).
	Wipe(user string)
}

// PassThrough is a Viewer that changes nothing: no message is Needed and
// headers pass unfiltered. It is the default when Options.Viewer is nil.
type PassThrough struct{}

var _ Viewer = PassThrough{}

// Needed implements Viewer.
func (PassThrough) Needed(imap.BodyStructure) bool { return false }

// Lookup implements Viewer.
func (PassThrough) Lookup(MessageKey) *View { return nil }

// View implements Viewer.
func (PassThrough) View(_ context.Context, _ MessageKey, raw []byte) (*View, error) {
	return &View{Raw: bytes.Clone(raw)}, nil
}

// FilterHeader implements Viewer.
func (PassThrough) FilterHeader(header []byte) []byte { return header }

// Wipe implements Viewer.
func (PassThrough) Wipe(string) {}
