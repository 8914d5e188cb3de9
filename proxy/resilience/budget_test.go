package resilience

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// withdrawAll withdraws until refused and returns how many were granted.
func withdrawAll(b *RetryBudget) int {
	n := 0
	for b.Withdraw() {
		n++
		if n > 1e6 {
			panic("budget never exhausted")
		}
	}
	return n
}

func TestRetryBudgetExhaustsAtTheRightCount(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		opts     RetryBudgetOptions
		deposits int
		want     int // retries granted in the window
		wantNext int // retries granted once the window has passed
	}{
		{"ratio 0.2 + floor 1/s over 10s", RetryBudgetOptions{Ratio: 0.2, MinPerSecond: 1, TTL: 10 * time.Second}, 100, 10 + 20, 10},
		{"ratio only", RetryBudgetOptions{Ratio: 0.5, MinPerSecond: -1, TTL: time.Second}, 10, 5, 0},
		{"floor only, no traffic", RetryBudgetOptions{Ratio: -1, MinPerSecond: 3, TTL: 2 * time.Second}, 0, 6, 6},
		{"ratio rounds down", RetryBudgetOptions{Ratio: 0.1, MinPerSecond: -1, TTL: time.Second}, 19, 1, 0},
		{"defaults: 0.2, 10/s, 10s", RetryBudgetOptions{}, 50, 100 + 10, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				b := NewRetryBudget(tc.opts)
				for range tc.deposits {
					b.Deposit()
				}
				if got := b.Available(); got != int64(tc.want) {
					t.Errorf("Available = %d, want %d", got, tc.want)
				}
				if got := withdrawAll(b); got != tc.want {
					t.Fatalf("granted %d retries after %d requests, want %d", got, tc.deposits, tc.want)
				}
				ttl := tc.opts.TTL
				if ttl == 0 {
					ttl = 10 * time.Second
				}
				time.Sleep(ttl)
				if got := withdrawAll(b); got != tc.wantNext {
					t.Fatalf("granted %d retries one window later, want %d (deposits and retries expired)", got, tc.wantNext)
				}
			})
		})
	}
}

// TestRetryBudgetSlidingWindow checks that deposits and withdrawals expire
// one bucket at a time rather than all at once.
func TestRetryBudgetSlidingWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := NewRetryBudget(RetryBudgetOptions{Ratio: 0.1, MinPerSecond: -1, TTL: 10 * time.Second})
		steps := []struct {
			sleep    time.Duration
			deposits int
			withdraw int
			want     int64 // Available after the step
		}{
			{0, 100, 0, 10},                    // t=0
			{5 * time.Second, 100, 5, 15},      // t=5s: 200 deposits -> 20, 5 taken
			{5 * time.Second, 0, 0, 5},         // t=10s: t=0 deposits gone -> 10, 5 taken
			{5 * time.Second, 0, 0, 0},         // t=15s: everything gone
			{time.Second, 30, 3, 0},            // t=16s: 30 -> 3, 3 taken
			{10 * time.Second, 0, 0, 0},        // t=26s: all gone again
			{time.Hour, 10, 0, 1},              // long idle: old buckets must not resurrect
			{9900 * time.Millisecond, 0, 0, 1}, // same window still
		}
		for i, st := range steps {
			time.Sleep(st.sleep)
			for range st.deposits {
				b.Deposit()
			}
			for range st.withdraw {
				if !b.Withdraw() {
					t.Fatalf("step %d: Withdraw refused within the budget", i)
				}
			}
			if got := b.Available(); got != st.want {
				t.Fatalf("step %d (t=%v): Available = %d, want %d", i, time.Since(time.Unix(946684800, 0)), got, st.want)
			}
		}
	})
}

// TestRetryBudgetConcurrent: many goroutines deposit, then many withdraw;
// exactly the budget is granted (run with -race).
func TestRetryBudgetConcurrent(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := NewRetryBudget(RetryBudgetOptions{Ratio: 0.2, MinPerSecond: -1, TTL: 10 * time.Second})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 125 {
					b.Deposit()
				}
			})
		}
		wg.Wait()
		var granted atomic.Int64
		for range 8 {
			wg.Go(func() {
				for range 100 {
					if b.Withdraw() {
						granted.Add(1)
					}
					b.Deposit() // deposits racing with withdrawals raise the budget
				}
			})
		}
		wg.Wait()
		// 1000 + 800 deposits -> 360 allowed; 800 attempts. Interleaving
		// decides how many of the later deposits arrived before the last
		// attempts, so the grant lies between 200 and 360.
		if g := granted.Load(); g < 200 || g > 360 {
			t.Fatalf("granted %d retries, want 200..360", g)
		}
		if got := b.Available(); got != 360-granted.Load() {
			t.Fatalf("Available = %d, want %d", got, 360-granted.Load())
		}
	})
}
