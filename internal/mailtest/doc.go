// Package mailtest holds what tests and the demo need to stand in for the
// world around the proxy: a test PKI generated at run time, in-process
// upstream SMTP and IMAP servers, and helpers that find and start the real
// tools (openssl, gpgsm, Dovecot, Postfix, PostgreSQL, Chromium) the
// end-to-end tests run against.
package mailtest
