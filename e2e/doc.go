// Package e2e holds black-box end-to-end tests. They run the built
// smimeproxy binary (SMIMEPROXY_BIN, or one built by TestMain) against real
// independent implementations — openssl cms and gpgsm — in both directions,
// so the S/MIME formats of RFC 8551, RFC 5652, RFC 5083/5084, RFC 8017/4055
// and RFC 5753 are proven to interoperate, not just to round-trip through
// our own code. The tests live in _test.go files; this package has no API.
package e2e
