package resilience

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// RetryBudgetOptions size a RetryBudget. Zero fields take the defaults named.
type RetryBudgetOptions struct {
	// Ratio of retries to original requests within the window, e.g. 0.2 lets
	// one retry per five requests. Default 0.2. Negative means no ratio part.
	Ratio float64
	// MinPerSecond is a floor of retries per second that is always allowed,
	// so that a low-traffic upstream can still retry. Default 10. Negative
	// means no floor.
	MinPerSecond int
	// TTL is the window: deposits and withdrawals older than TTL no longer
	// count. Default 10s.
	TTL time.Duration
	// Now is the clock; nil means time.Now (testing/synctest fakes it).
	Now func() time.Time
}

// budgetBuckets is the window's resolution: deposits expire in steps of
// TTL/budgetBuckets.
const budgetBuckets = 10

// RetryBudget bounds retries to a share of live traffic, as Finagle's
// RetryBudget and Linkerd's retry budgets do:
//
//	retries allowed in any TTL window = MinPerSecond*TTL/1s + Ratio*deposits in the window
//
// Why a budget rather than a retry count per request: under an outage a
// per-request count multiplies load by (1+count) exactly when the upstream
// can least afford it; a budget caps the extra load at Ratio, while the floor
// keeps retries useful for upstreams that see only a few requests. Why a
// sliding window of buckets rather than a token bucket: deposits must expire
// (a burst of traffic an hour ago must not fund a retry storm now), and
// buckets expire them in fixed memory with one counter pair per bucket.
//
// The hot path (Deposit on every request) is one atomic add; Withdraw, only
// on retries, takes a mutex so that concurrent retries cannot overdraw.
type RetryBudget struct {
	ratio float64
	floor float64 // MinPerSecond * TTL seconds
	width int64   // bucket width in nanoseconds
	now   func() time.Time
	epoch time.Time

	// mu serialises Withdraw (so that concurrent retries cannot overdraw)
	// and bucket rotation. Deposit, on every request, takes it only when it
	// is the first to reach a new bucket: once per TTL/budgetBuckets.
	mu      sync.Mutex
	buckets [budgetBuckets]budgetBucket
}

type budgetBucket struct {
	index       atomic.Int64 // which width-long slot of time this bucket holds
	deposits    atomic.Int64
	withdrawals atomic.Int64 // written under mu only; atomic for Available's readers
}

// NewRetryBudget returns an empty budget; only the floor is available at first.
func NewRetryBudget(o RetryBudgetOptions) *RetryBudget {
	if o.Ratio == 0 {
		o.Ratio = 0.2
	} else if o.Ratio < 0 {
		o.Ratio = 0
	}
	if o.MinPerSecond == 0 {
		o.MinPerSecond = 10
	} else if o.MinPerSecond < 0 {
		o.MinPerSecond = 0
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	epoch := time.Now()
	if o.Now != nil {
		epoch = o.Now()
	}
	b := &RetryBudget{
		ratio: o.Ratio,
		floor: float64(o.MinPerSecond) * o.TTL.Seconds(),
		width: max(int64(o.TTL)/budgetBuckets, 1),
		now:   o.Now,
		epoch: epoch,
	}
	for i := range b.buckets {
		b.buckets[i].index.Store(-1)
	}
	return b
}

// current returns the bucket for now, clearing it first if it still holds
// an older slot. The counters are zeroed before the new index is published,
// so a Deposit that sees the new index never adds into a bucket about to be
// cleared. (A Deposit stalled for a whole TTL between reading the clock and
// adding could land in a newer slot; an off-by-one in a window of thousands
// is harmless.)
func (b *RetryBudget) current() (*budgetBucket, int64) {
	idx := b.slot()
	bk := &b.buckets[idx%budgetBuckets]
	if bk.index.Load() != idx {
		b.mu.Lock()
		b.rotateLocked(bk, idx)
		b.mu.Unlock()
	}
	return bk, idx
}

// slot is the index of the bucket-wide slot of time we are in. The default
// clock uses time.Since, which reads only the monotonic clock (cheaper than
// time.Now; Deposit runs on every request).
func (b *RetryBudget) slot() int64 {
	if b.now == nil {
		return int64(time.Since(b.epoch)) / b.width
	}
	return int64(b.now().Sub(b.epoch)) / b.width
}

func (b *RetryBudget) rotateLocked(bk *budgetBucket, idx int64) {
	if bk.index.Load() != idx {
		bk.deposits.Store(0)
		bk.withdrawals.Store(0)
		bk.index.Store(idx)
	}
}

// Deposit records one original (not retried) request.
func (b *RetryBudget) Deposit() {
	bk, _ := b.current()
	bk.deposits.Add(1)
}

// Withdraw asks for one retry. It returns false, and records nothing, when
// the budget is exhausted; the caller then returns the failed response.
func (b *RetryBudget) Withdraw() bool {
	idx := b.slot()
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := &b.buckets[idx%budgetBuckets]
	b.rotateLocked(bk, idx)
	if b.available(idx) <= 0 {
		return false
	}
	bk.withdrawals.Add(1)
	return true
}

// Available returns how many retries Withdraw would grant now (for metrics).
func (b *RetryBudget) Available() int64 {
	idx := b.slot()
	return max(b.available(idx), 0)
}

// available is the allowance of the window ending in slot idx minus the
// retries already taken in it.
func (b *RetryBudget) available(idx int64) int64 {
	var deposits, withdrawals int64
	for i := range b.buckets {
		o := &b.buckets[i]
		if in := o.index.Load(); in > idx-budgetBuckets && in <= idx {
			deposits += o.deposits.Load()
			withdrawals += o.withdrawals.Load()
		}
	}
	// Floor to whole retries so the count at which Withdraw starts failing
	// is exact; the epsilon absorbs float error in Ratio*deposits.
	return int64(math.Floor(b.floor+b.ratio*float64(deposits)+1e-9)) - withdrawals
}
