// Package imap is smimeproxy's IMAP proxy: a go-imap v2 imapserver in front
// of the mail client, an imapclient connection to the upstream IMAP server
// behind it (one upstream connection per client connection), and a Viewer
// that turns S/MIME messages (RFC 8551) into what the client reads.
//
// The upstream stays the authority: LOGIN and AUTHENTICATE PLAIN are
// checked by it, and UIDs, UIDVALIDITY, flags and mailbox names are its own,
// passed on unchanged (IMAP4rev1, RFC 3501; UIDPLUS RFC 4315; MOVE RFC 6851;
// IDLE RFC 2177; NAMESPACE RFC 2342; BINARY RFC 3516; SPECIAL-USE RFC 6154).
//
// Plain messages are never downloaded whole: the proxy reads the upstream
// BODYSTRUCTURE, streams body sections through, and only rewrites the header
// block (the Viewer removes status headers forged by outsiders; sizes are
// adjusted so RFC822.SIZE equals the length of BODY[]). Messages that are
// S/MIME at their top level are fetched whole, handed to the Viewer, and
// every FETCH item is answered from the view's bytes.
//
// Behaviour worth knowing:
//
//   - A FETCH that needs a locked Digital ID answers every other message,
//     leaves the locked ones out (no stand-in body a client would keep),
//     sends an untagged OK [ALERT] naming the unlock URL and ends with
//     NO [UNAVAILABLE]. go-imap allows one status per command, so the
//     plain messages of the same FETCH arrive with the NO.
//   - FETCH responses may come in another order than the sequence numbers
//     (cached views first, then plain messages, then viewed ones), as
//     IMAP allows.
//   - SEARCH passes on unchanged: the upstream searches what it stores, so
//     text criteria cannot match the plaintext of encrypted mail.
//   - ENABLE is answered by imapserver (IMAP4rev2, UTF8=ACCEPT) and not
//     passed on; CAPABILITY is the proxy's fixed set (proxyCaps), each of
//     which the proxy implements or the upstream is expected to have.
//   - A NO or BAD of the upstream passes on with its response code and
//     text; every other failure gets a fixed text with the session id, and
//     the cause goes to the log under that id.
//   - Unilateral EXISTS, EXPUNGE and FETCH FLAGS of the upstream reach the
//     client after its command completes, or at once during IDLE (the proxy
//     then holds an IDLE open upstream).
package imap
