package identity

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/seal"
)

// BenchmarkUnlock: one unlock (Argon2id with the default parameters, t=3,
// 64 MiB, p=4, then the master key unwrapped) per iteration.
func BenchmarkUnlock(b *testing.B) {
	f := newFixture(b, nil, func(o *Options) { o.Seal = seal.DefaultParams() })
	ctx := context.Background()
	const alice = "alice@example.test"
	f.enroll(b, alice, "correct horse")
	// Baseline in the same run: one bare Argon2id derivation.
	p := seal.DefaultParams()
	bare := time.Hour
	for range 3 { // the fastest of three, as the machine's load varies
		start := time.Now()
		argon2.IDKey([]byte("correct horse"), make([]byte, 16), p.Time, p.MemoryKiB, p.Threads, 64)
		bare = min(bare, time.Since(start))
	}
	b.ResetTimer()
	for b.Loop() {
		f.svc.Lock(ctx, alice)
		if _, err := f.svc.Unlock(ctx, UnlockRequest{Email: alice, Password: "correct horse"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/unlock")
	b.ReportMetric(float64(bare.Microseconds())/1000, "argon2-ms")
}

// BenchmarkUnlockConcurrent100: 100 unlocks at the same moment (10
// Digital IDs, 10 requests each, so the setup stays short) with the default
// Argon2 parameters. The limiter lets Cap derivations run at once, so the
// heap stays near Cap × 64 MiB of live Argon2 memory (up to twice that
// with the garbage GOGC=100 lets accumulate) instead of 100 × 64 MiB.
func BenchmarkUnlockConcurrent100(b *testing.B) {
	const ids, each = 10, 10
	lim := seal.NewLimiter(2)
	f := newFixture(b, nil, func(o *Options) { o.Seal = seal.DefaultParams(); o.Limiter = lim })
	ctx := context.Background()
	emails := make([]string, ids)
	var wg sync.WaitGroup
	for i := range emails {
		emails[i] = fmt.Sprintf("user%d@example.test", i)
		wg.Go(func() { f.enroll(b, emails[i], "correct horse") })
	}
	wg.Wait()
	var peak atomic.Uint64
	b.ResetTimer()
	for b.Loop() {
		for _, e := range emails {
			f.svc.Lock(ctx, e)
		}
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() { // sample the heap while the unlocks run
			defer close(sampled)
			t := time.NewTicker(2 * time.Millisecond)
			defer t.Stop()
			var m runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					runtime.ReadMemStats(&m)
					if m.HeapInuse > base.HeapInuse && m.HeapInuse-base.HeapInuse > peak.Load() {
						peak.Store(m.HeapInuse - base.HeapInuse)
					}
				}
			}
		}()
		for _, e := range emails {
			for range each {
				wg.Go(func() {
					if _, err := f.svc.Unlock(ctx, UnlockRequest{Email: e, Password: "correct horse"}); err != nil {
						b.Error(err)
					}
				})
			}
		}
		wg.Wait()
		close(stop)
		<-sampled
	}
	per := seal.DefaultParams().MemoryBytes()
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(ids*each*per)/(1<<20), "unlimited-MiB")
	b.ReportMetric(float64(lim.Peak()), "argon2-at-once")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/100-unlocks")
	if lim.Peak() > lim.Cap() {
		b.Errorf("%d derivations at once, limiter allows %d", lim.Peak(), lim.Cap())
	}
	if limit := 2 * uint64(lim.Cap()+1) * per; peak.Load() > limit {
		b.Errorf("peak heap %d MiB above 2 × (Cap+1) × 64 MiB = %d MiB", peak.Load()>>20, limit>>20)
	}
}

// BenchmarkEnroll: one enrolment with the defaults (two RSA-2048 keys
// generated, two certificates issued, Argon2id t=3 64 MiB, escrow, one
// SQLite transaction) per iteration.
func BenchmarkEnroll(b *testing.B) {
	st, _ := openSQLite(b)
	f := newFixture(b, storeRecords{st}, func(o *Options) { o.Seal = seal.DefaultParams(); o.KeyType = ca.KeyRSA2048 })
	ctx := context.Background()
	i := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		email := fmt.Sprintf("new%d@example.test", i)
		i++
		tok := f.token(b, email, PurposeEnroll)
		b.StartTimer()
		if _, err := f.svc.Enroll(ctx, EnrollRequest{Email: email, Token: tok, Name: "New", Password: "correct horse"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/enrol")
}

// BenchmarkSigningKey: what the SMTP proxy pays per message for the
// signing key of an unlocked Digital ID (RSA-2048, SQLite store, four IDs
// in it). cold: the opened keys are dropped before each call, so every
// call reads the ID and its keys, unseals and parses the key (the cost
// before keyCache); cached: the keys were opened once. DecryptionKeys
// (the IMAP proxy, per S/MIME message opened) is measured the same way.
func BenchmarkSigningKey(b *testing.B) {
	st, _ := openSQLite(b)
	f := newFixture(b, storeRecords{st}, func(o *Options) { o.KeyType = ca.KeyRSA2048 })
	ctx := context.Background()
	const alice = "alice@example.test"
	for _, e := range []string{alice, "bob@example.test", "carol@example.test", "dave@example.test"} {
		f.enroll(b, e, "correct horse")
	}
	sign := func(b *testing.B) {
		if _, _, _, _, err := f.svc.SigningKey(ctx, alice); err != nil {
			b.Fatal(err)
		}
	}
	decrypt := func(b *testing.B) {
		if _, err := f.svc.DecryptionKeys(ctx, alice); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		cold bool
		call func(*testing.B)
	}{
		{"cold", true, sign},
		{"cached", false, sign},
		{"decrypt-cold", true, decrypt},
		{"decrypt-cached", false, decrypt},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.call(b)
			for b.Loop() {
				if bc.cold {
					f.svc.keys.dropAll(false)
				}
				bc.call(b)
			}
		})
	}
}
