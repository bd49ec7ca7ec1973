// Package smtp is the submission proxy (RFC 6409 in front of RFC 6409): an
// SMTP server of its own (server*.go: RFC 5321, 3207, 4954, 1870, 6152,
// 6531, 2920, 2034, 3030) that mail clients use as their outgoing server,
// and for each client session a client to the real submission server. Every
// message leaves signed with the sender's Digital ID and encrypted to every
// recipient with a certificate (RFC 8551), as package policy decides.
//
// # Authentication
//
// AUTH PLAIN and LOGIN (RFC 4954) are checked by the upstream: at AUTH the
// proxy opens the session's upstream connection and logs in there with the
// same credentials. The upstream stays the authority; the proxy keeps no
// password beyond that call. A refusal is 535 5.7.8, an unreachable upstream
// 454 4.7.0. MAIL needs a login (530 5.7.0).
//
// # Envelopes
//
// MAIL FROM and each RCPT TO are sent to the upstream as the client issues
// them, so the client sees the upstream's refusals recipient by recipient.
// At DATA the message is read whole (up to the advertised SIZE), checked, and
// the policy splits the recipients into envelopes: one encrypted to the
// recipients with certificates (and the sender), a signed-only one for those
// without under encrypt = "when-possible", and one per Bcc recipient (a
// RCPT TO address in neither To nor Cc), so nobody learns a Bcc recipient from
// the envelope or the CMS RecipientInfos. The Bcc header field is removed from
// every copy. A single envelope goes out in the transaction the client
// opened; several are replayed after RSET, each with MAIL, RCPT and DATA
// (or BDAT) of its own, on the same connection.
//
// # Replies
//
// The client gets 250 only when the upstream accepted every envelope. An
// upstream refusal reaches the client with the upstream's code, enhanced
// status and text (printable ASCII, one line, prefixed "Mail server:"). A lost
// connection (refused, dropped mid-message, timeout) gives 451 4.4.2; nothing
// the upstream did not acknowledge counts as sent. When some envelopes were
// accepted and a later one failed, the reply is 554 5.3.0 naming the
// recipients who got the message and those who did not: a temporary reply
// would make the client resend to everyone, duplicating the copies already
// delivered, and the message cannot be recalled. Envelopes after a refused
// one are still tried while the connection lives, so as many recipients as
// possible get it and the list of those to resend to is exact.
//
// Internal failures never reach the client as text: every reply is a fixed
// sentence with a session id; the cause is logged under that id.
//
// Policy outcomes: a locked Digital ID is 451 4.7.0 with the unlock URL; a
// mailbox without one, when signing is required, 451 4.7.0 with the enrolment
// URL (the client keeps the message and retries); a From other than the
// authenticated mailbox when signing is required, and recipients without a
// certificate under encrypt = "always", 554 5.7.1 naming them — nothing is
// sent in either case.
//
// # Input checks
//
// Refused with a reply, after which the session is usable for the next
// transaction (RSET semantics): a message over the size limit (552 5.3.4);
// NUL bytes, a CR or LF that is not part of a CRLF pair, 8-bit data without
// BODY=8BITMIME or SMTPUTF8, a header that does not parse, no From (554
// 5.6.0). Bare LF is refused rather than normalised: only CRLF.CRLF ends DATA
// here, and refusing every lone CR or LF means no "\n.\n"-style sequence can
// ever be read as a message end by a server further on (SMTP smuggling).
//
// # Extensions
//
// PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES and CHUNKING (BDAT, without
// BINARYMIME) are handled by the proxy itself, whatever the upstream offers.
// For 8BITMIME that is sound because every copy the proxy sends upstream is
// 7-bit (RFC 6152 permits the conversion), so it declares BODY=8BITMIME
// there only along with SMTPUTF8 (RFC 6531): an encrypted copy is base64; a signed copy is
// canonicalised before signing (RFC 8551 section 3.1.1), which re-encodes
// 8-bit and binary leaves as quoted-printable or base64; an unsigned plain
// copy with 8-bit data is converted the same way. Only the header can stay
// 8-bit, and that needs SMTPUTF8. SMTPUTF8 is offered only when the upstream offers it (asked once
// at start). SIZE is the configured maximum, lowered so that the encrypted
// copy (about 4/3 of the message) still fits the upstream's SIZE.
//
// # Upstream connection
//
// The client to the submission server is the proxy's own (upclient*.go):
// STARTTLS (RFC 3207, EHLO again after it; bytes sent before the handshake
// are refused), implicit TLS or none; EHLO with HELO fallback; AUTH PLAIN or
// LOGIN; multi-line replies with RFC 2034 enhanced status. Each command is
// bounded by CommandTimeout, each message (transfer and reply) by
// DataTimeout, and both by the session's context. A 4xx or 5xx reply is a
// refusal passed on to the client; anything else (I/O error, timeout, a
// reply out of place) marks the connection lost for the rest of the session.
// When the upstream offers CHUNKING (RFC 3030; Postfix does), each copy goes
// in BDAT chunks of up to 1 MB written straight to the connection; a chunk
// refused is the upstream's refusal and the transaction is reset. Otherwise
// DATA, with dot-stuffing done on whole buffers. Either way the upstream
// gets the same bytes, ending with CRLF.
//
// # Certificate lookups
//
// The signing key is asked of package identity once per message and never
// kept. Recipient certificates (public) are looked up through a small cache
// shared by all sessions: an answer for (sender, recipient), including "no
// certificate known", is reused for Options.CertCacheTTL (default 5 s). So a
// revoked Digital ID or a removed certificate may still be encrypted to for
// up to that long after the change, and a newly enrolled or imported
// certificate is used up to that late. Failed lookups are not cached.
//
// # Memory
//
// A message is held in memory once while it is processed (never written to
// disk): nothing goes upstream before the whole message has been checked,
// and several envelopes (Bcc copies, a signed-only copy) are made from it.
// Everything else streams: the MIME entity is assembled inside the read
// buffer (the header block rearranged, the body not copied), the signed
// entity refers to it and writes itself into each copy, and each envelope
// encrypts (AES-CBC in chunks of a few KB) and base64-encodes while it is
// written to the upstream. AES-GCM copies hold one encrypted copy more,
// since Go's AEAD seals in one piece.
// Memory is bounded per message by SIZE (Options.MaxMessageBytes, default
// 50 MB, lowered to fit the upstream's SIZE) and across sessions by
// Options.MaxInFlightBytes (default 256 MB): every byte read at DATA is
// taken from that budget without waiting and given back when DATA ends, and
// a message that would exceed it gets 452 4.3.1 (try again shortly), so
// sessions holding parts of the budget can never block one another.
// TestLargeMessageBoundedHeap sends a 20 MB message and measures the heap
// growth while it passes: 1.2 times the message size with GOGC=10 (3.0
// under the race detector), bound 4. With the default GOGC=100 the
// collector lets garbage reach about the live size again before it runs, so
// plan for roughly 2 to 3 times the in-flight budget, plus the per-session
// buffers (pooled read buffers up to 1 MB each).
package smtp
