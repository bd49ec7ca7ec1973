// Package admin is smimeproxy's HTTP admin endpoint: the JSON API under
// /api/v1 (security tokens, enrolment, import, root acceptance, unlock and
// lock, Digital ID and trust-store administration, public certificates),
// the small web pages users enrol and unlock with (/, /enroll, /unlock,
// /upgrade; html/template, embedded with go:embed, usable without
// JavaScript), /ca.pem, /healthz and /metrics (Prometheus text format).
//
// Admin calls carry the bearer credential of token_file (RFC 6750);
// user calls carry the mailbox's own login as HTTP Basic (RFC 7617),
// checked against the upstream IMAP server, and the pages keep a short-lived
// session cookie (RFC 6265, HttpOnly, SameSite=Strict) after a login form.
//
// Defences, after Caddy's admin endpoint: the Host header must name this
// endpoint (DNS rebinding), browser requests that change state must come
// from this origin (Origin, Sec-Fetch-Site; forms also carry a CSRF token),
// API posts must be JSON, bodies are capped with http.MaxBytesReader, and
// failed logins slow down per client address. Handlers return errors; one
// function turns them into the JSON reply {"error": {"code", "message"}}
// (or a page message) and never sends internal error text: that goes to the
// log with a request id, and the client gets the id.
package admin
