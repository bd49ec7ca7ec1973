// Package imap is smimeproxy's IMAP proxy: a go-imap v2 imapserver in front
// of the mail client, an imapclient connection to the upstream IMAP server
// behind it (one upstream connection per client connection), and a Viewer
// that turns S/MIME messages (RFC 8551) into what the client reads.
//
// The upstream stays the authority: LOGIN and AUTHENTICATE PLAIN are
// checked by it, and UIDs, UIDVALIDITY, flags and mailbox names are its own,
// passed on unchanged (IMAP4rev1, RFC 3501; UIDPLUS RFC 4315; MOVE RFC 6851;
// IDLE RFC 2177; NAMESPACE RFC 2342; BINARY RFC 3516).
//
// Plain messages are never downloaded whole: the proxy reads the upstream
// BODYSTRUCTURE, streams body sections through, and only rewrites the header
// block (the Viewer removes status headers forged by outsiders; sizes are
// adjusted so RFC822.SIZE equals the length of BODY[]). Messages that are
// S/MIME at their top level are fetched whole, handed to the Viewer, and
// every FETCH item is answered from the view's bytes.
package imap
