package identity

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	// Start at the real time: certificates the CA issues are valid from now.
	return &fakeClock{now: time.Now().UTC().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestUnlockCacheExpiry(t *testing.T) {
	cases := []struct {
		name     string
		idle     time.Duration
		remember time.Duration
		steps    []time.Duration // advance, then get; all but the last must succeed
	}{
		{"absolute expiry despite use", time.Hour, 30 * time.Minute, []time.Duration{10 * time.Minute, 10 * time.Minute, 9 * time.Minute, time.Minute}},
		{"idle expiry", 10 * time.Minute, 5 * time.Hour, []time.Duration{9 * time.Minute, 9 * time.Minute, 10 * time.Minute}},
		{"no idle limit", 0, time.Hour, []time.Duration{50 * time.Minute, 10 * time.Minute}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newFakeClock()
			uc := newUnlockCache(clk, c.idle)
			master := []byte("0123456789abcdef0123456789abcdef")
			uc.put("id1", "id1@example.test", master, c.remember)
			for i, d := range c.steps {
				clk.Advance(d)
				got, err := uc.get("id1")
				last := i == len(c.steps)-1
				if last {
					if !errors.Is(err, ErrLocked) {
						t.Fatalf("step %d: got %v, want ErrLocked", i, err)
					}
					if !bytes.Equal(master, make([]byte, len(master))) {
						t.Fatal("expired master key not wiped")
					}
					return
				}
				if err != nil || string(got) != "0123456789abcdef0123456789abcdef" {
					t.Fatalf("step %d: get = %q, %v", i, got, err)
				}
			}
		})
	}
}

func TestUnlockCacheLockWipesAtOnce(t *testing.T) {
	uc := newUnlockCache(newFakeClock(), time.Hour)
	master := bytes.Repeat([]byte{0x5a}, 32)
	uc.put("id1", "id1@example.test", master, time.Hour)
	uc.put("id2", "id2@example.test", bytes.Repeat([]byte{0x33}, 32), time.Hour)
	cp, err := uc.get("id1")
	if err != nil {
		t.Fatal(err)
	}
	if !uc.lock("id1") {
		t.Fatal("lock reported the ID was not unlocked")
	}
	if !bytes.Equal(master, make([]byte, 32)) {
		t.Fatal("lock did not zero the master key")
	}
	if cp[0] != 0x5a {
		t.Fatal("the copy handed out must stay intact for its user")
	}
	if _, err := uc.get("id1"); !errors.Is(err, ErrLocked) {
		t.Fatalf("after lock: %v", err)
	}
	if _, err := uc.get("id2"); err != nil {
		t.Fatalf("lock of id1 locked id2: %v", err)
	}
	uc.wipeAll()
	if _, err := uc.get("id2"); !errors.Is(err, ErrLocked) {
		t.Fatal("wipeAll left an ID unlocked")
	}
}

func TestUnlockCacheSweep(t *testing.T) {
	clk := newFakeClock()
	uc := newUnlockCache(clk, time.Hour)
	short := bytes.Repeat([]byte{1}, 32)
	long := bytes.Repeat([]byte{2}, 32)
	uc.put("short", "short@example.test", short, time.Minute)
	uc.put("long", "long@example.test", long, 50*time.Minute)
	clk.Advance(2 * time.Minute)
	uc.sweep()
	if !bytes.Equal(short, make([]byte, 32)) || bytes.Equal(long, make([]byte, 32)) {
		t.Fatal("sweep must wipe exactly the expired entry")
	}
	if until, ok := uc.until("long"); !ok || !until.Equal(clk.Now().Add(48*time.Minute)) {
		t.Fatalf("until = %v %v", until, ok)
	}
}

func TestBackoffGrowsAndResets(t *testing.T) {
	clk := newFakeClock()
	b := newBackoff(clk, time.Second, 5*time.Minute)
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300}
	for i, w := range want {
		b.fail("id:x", "addr:1.2.3.4")
		if got := b.wait("id:x"); got != w*time.Second {
			t.Fatalf("after %d failures: wait %v, want %v", i+1, got, w*time.Second)
		}
	}
	clk.Advance(299 * time.Second)
	if got := b.wait("addr:1.2.3.4"); got != time.Second {
		t.Fatalf("address wait after 299 s: %v", got)
	}
	if got := b.wait("id:other", "addr:1.2.3.4"); got != time.Second {
		t.Fatalf("the longest of the keys must apply: %v", got)
	}
	clk.Advance(time.Second)
	if got := b.wait("id:x"); got != 0 {
		t.Fatalf("wait after the period: %v", got)
	}
	b.reset("id:x")
	b.fail("id:x")
	if got := b.wait("id:x"); got != time.Second {
		t.Fatalf("after reset the back-off starts again at 1 s, got %v", got)
	}
	for range 100 {
		b.fail("id:y")
	}
	if got := b.wait("id:y"); got != 5*time.Minute {
		t.Fatalf("cap not held after 100 failures: %v", got)
	}
}

func TestBackoffPrunes(t *testing.T) {
	clk := newFakeClock()
	b := newBackoff(clk, time.Second, time.Minute)
	for i := range backoffPrune {
		b.fail(string(rune(0x1000 + i)))
	}
	clk.Advance(3 * time.Minute)
	b.fail("new")
	if len(b.state) != 1 {
		t.Fatalf("table holds %d entries after pruning, want 1", len(b.state))
	}
}

func TestRetryError(t *testing.T) {
	var err error = &RetryError{After: 1500 * time.Millisecond}
	if !errors.Is(err, ErrTooManyAttempts) {
		t.Fatal("RetryError does not unwrap to ErrTooManyAttempts")
	}
	var re *RetryError
	if !errors.As(err, &re) || re.After != 1500*time.Millisecond {
		t.Fatal("errors.As")
	}
}
