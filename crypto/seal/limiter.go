package seal

import (
	"context"
	"fmt"
	"sync"
)

// Limiter bounds how many Argon2 derivations run at once. Each takes
// Params.MemoryBytes() (64 MiB by default), so N slots cap that memory at
// N × 64 MiB however many unlocks arrive together; the rest wait, and give
// up when their context ends. What finished derivations leave is garbage
// until the next collection, so with the default GOGC the heap peaks at up
// to about twice N × 64 MiB (measured: 513 MiB for N = 4, 100 unlocks);
// GOMEMLIMIT tightens that.
type Limiter struct {
	slots chan struct{}

	mu      sync.Mutex
	running int
	peak    int
}

// NewLimiter allows n derivations at once (n < 1 is taken as 1).
func NewLimiter(n int) *Limiter {
	if n < 1 {
		n = 1
	}
	return &Limiter{slots: make(chan struct{}, n)}
}

// LimiterForMemory sizes a limiter so derivations with p stay within budget
// bytes (at least one slot).
func LimiterForMemory(budget uint64, p Params) *Limiter {
	per := p.MemoryBytes()
	if per == 0 {
		return NewLimiter(1)
	}
	return NewLimiter(int(min(budget/per, 1<<16)))
}

// Cap is the number of slots.
func (l *Limiter) Cap() int { return cap(l.slots) }

// Acquire takes a slot, waiting until one is free or ctx ends. Call the
// returned release exactly once when the derivation is done.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("seal: waiting for a key-derivation slot: %w", context.Cause(ctx))
	}
	l.mu.Lock()
	l.running++
	l.peak = max(l.peak, l.running)
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.running--
			l.mu.Unlock()
			<-l.slots
		})
	}, nil
}

// Do runs fn holding a slot.
func (l *Limiter) Do(ctx context.Context, fn func() error) error {
	release, err := l.Acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return fn()
}

// Peak is the highest number of slots ever held at once (for metrics and
// tests).
func (l *Limiter) Peak() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peak
}
