// Package store defines where smimeproxy keeps its state: Digital IDs and
// their sealed keys, certificates, key-recovery escrow, single-use
// enrolment tokens, the certificate directory, the trust store, legacy
// upgrade state, settings and the audit log.
//
// Store is the interface; store/sqlite (embedded, the default) and
// store/postgres (several proxy instances sharing one database) implement
// it, and store/storetest is the conformance suite both pass. Nothing
// unsealed is ever handed to a Store: private keys arrive sealed by
// crypto/seal, tokens as their HMAC.
//
// Mailbox addresses are compared lower-cased; a Store lower-cases every
// address it is given. Times are kept to the microsecond, in UTC.
package store
