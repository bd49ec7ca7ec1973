package seal

import (
	"errors"
	"fmt"
)

// Params are the Argon2id cost parameters. They are stored in every wrapped
// master key, so the defaults can change later without breaking old records.
type Params struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory per derivation, KiB
	Threads   uint8  // parallel lanes
}

// DefaultParams are t=3, m=64 MiB, p=4 (RFC 9106 §4, second recommended
// option).
func DefaultParams() Params { return Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 4} }

// Bounds on parameters read from a record: a forged record must not make an
// unlock allocate gigabytes or spin for minutes.
const (
	maxTime      = 16
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxThreads   = 16
	minMemoryKiB = 8 * 1024
)

// ErrParams reports Argon2 parameters outside the accepted bounds.
var ErrParams = errors.New("seal: Argon2 parameters out of bounds")

// Validate checks the parameters against the accepted bounds.
func (p Params) Validate() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("%w: time %d not in 1..%d", ErrParams, p.Time, maxTime)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("%w: threads %d not in 1..%d", ErrParams, p.Threads, maxThreads)
	case p.MemoryKiB < minMemoryKiB || p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("%w: memory %d KiB not in %d..%d", ErrParams, p.MemoryKiB, minMemoryKiB, maxMemoryKiB)
	}
	return nil
}

// MemoryBytes is the memory one derivation with these parameters takes.
func (p Params) MemoryBytes() uint64 { return uint64(p.MemoryKiB) * 1024 }
