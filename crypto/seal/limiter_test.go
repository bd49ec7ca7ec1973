package seal

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLimiterWaitsAndCancels(t *testing.T) {
	l := NewLimiter(1)
	release, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second acquire with the slot held: %v, want deadline exceeded", err)
	}
	release()
	release() // a second call must not free a slot it does not hold
	r2, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if _, err := l.Acquire(ctx2); err == nil {
		t.Fatal("double release freed an extra slot")
	}
	r2()
	if got := LimiterForMemory(256<<20, DefaultParams()).Cap(); got != 4 {
		t.Fatalf("256 MiB budget at 64 MiB each: %d slots, want 4", got)
	}
	if got := LimiterForMemory(1, DefaultParams()).Cap(); got != 1 {
		t.Fatalf("tiny budget: %d slots, want 1", got)
	}
}

// concurrentUnlocks runs n unlocks of one wrapped key at once through l and
// returns the peak heap in use sampled while they ran.
func concurrentUnlocks(tb testing.TB, l *Limiter, wrap []byte, n int) (peakHeap uint64) {
	tb.Helper()
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- l.Do(context.Background(), func() error {
				mk, err := UnwrapMasterKey("pw", wrap, "id")
				mk.Wipe()
				return err
			})
		})
	}
	wg.Wait()
	close(done)
	<-sampled
	close(errs)
	for err := range errs {
		if err != nil {
			tb.Fatalf("unlock: %v", err)
		}
	}
	return peak.Load()
}

// TestLimiterBoundsConcurrentUnlocks sends 100 unlocks at once through a
// limiter of 2: never more than 2 derivations run, and the heap stays far
// below what 100 simultaneous derivations would take.
func TestLimiterBoundsConcurrentUnlocks(t *testing.T) {
	const n, slots = 100, 2
	mk, _ := NewMasterKey()
	wrap, err := WrapMasterKey("pw", mk, "id", fastParams)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	l := NewLimiter(slots)
	peak := concurrentUnlocks(t, l, wrap, n)
	if l.Peak() > slots || l.Peak() < 1 {
		t.Fatalf("limiter peak %d, bound %d", l.Peak(), slots)
	}
	unbounded := uint64(n) * fastParams.MemoryBytes()
	// Garbage from finished derivations may linger until the next GC, so
	// allow a few times the bound, still an order of magnitude below n.
	limit := base.HeapInuse + 6*slots*fastParams.MemoryBytes() + 32<<20
	t.Logf("peak heap %d MiB (base %d MiB, limit %d MiB, unbounded would be ≥ %d MiB)",
		peak>>20, base.HeapInuse>>20, limit>>20, unbounded>>20)
	if peak > limit {
		t.Fatalf("peak heap %d MiB exceeds %d MiB", peak>>20, limit>>20)
	}
}

// BenchmarkUnlock is one unlock with the default parameters (t=3, 64 MiB,
// p=4): the latency a user waits for.
func BenchmarkUnlock(b *testing.B) {
	mk, _ := NewMasterKey()
	wrap, err := WrapMasterKey("pw", mk, "id", DefaultParams())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		k, err := UnwrapMasterKey("pw", wrap, "id")
		if err != nil {
			b.Fatal(err)
		}
		k.Wipe()
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/op")
}

// BenchmarkUnlock100Concurrent sends 100 default-parameter unlocks at once
// through a limiter of 4 (256 MiB bound) and reports the sampled peak heap.
func BenchmarkUnlock100Concurrent(b *testing.B) {
	const n, slots = 100, 4
	mk, _ := NewMasterKey()
	wrap, err := WrapMasterKey("pw", mk, "id", DefaultParams())
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var peak uint64
	l := NewLimiter(slots)
	start := time.Now()
	for b.Loop() {
		peak = max(peak, concurrentUnlocks(b, l, wrap, n))
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/100-unlocks")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(slots)*float64(DefaultParams().MemoryBytes())/(1<<20), "bound-MiB")
	b.ReportMetric(float64(l.Peak()), "peak-slots")
}
