//go:build !race

package imap

// svRace: the race detector slows byte-heavy tests about tenfold.
const svRace = false
