package resilience

import (
	"sync"
	"sync/atomic"
	"time"
)

// State is a circuit breaker's state.
type State int32

// Breaker states.
const (
	Closed   State = iota // requests flow; consecutive failures are counted
	Open                  // requests are rejected until OpenFor has passed
	HalfOpen              // a few probe requests decide between Closed and Open
)

// String returns the state as used in metric labels: closed, open, half-open.
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// BreakerOptions configure a Breaker. Zero fields take the defaults named.
type BreakerOptions struct {
	// ConsecutiveFailures opens the breaker. Default 5.
	ConsecutiveFailures int
	// OpenFor is how long an open breaker rejects before it lets probes
	// through. Default 30s.
	OpenFor time.Duration
	// HalfOpenMaxProbes is how many requests may be in flight while half-open.
	// Default 1.
	HalfOpenMaxProbes int
	// OnStateChange, if set, is called on every transition, with the
	// Breaker's lock held: it must not call Allow (State is fine). Used for
	// the circuit-state metric.
	OnStateChange func(from, to State)
	// Now is the clock; nil means time.Now (testing/synctest fakes it).
	Now func() time.Time
}

// Breaker is a consecutive-failure circuit breaker:
//
//	closed --ConsecutiveFailures failures in a row--> open
//	open --OpenFor elapsed, on the next Allow--> half-open
//	half-open --a probe succeeds--> closed
//	half-open --a probe fails--> open (for OpenFor again)
//
// While half-open at most HalfOpenMaxProbes requests are admitted at once;
// others are rejected as if open. Probes unanswered after OpenFor no longer
// hold their slots. Closed is the hot path: Allow and a
// successful done touch only atomics.
type Breaker struct {
	opts     BreakerOptions
	state    atomic.Int32
	failures atomic.Int32 // consecutive failures while closed

	mu         sync.Mutex
	openedAt   time.Time // under mu
	halfOpenAt time.Time // when the current set of probes began; under mu
	probes     int       // in-flight half-open probes; under mu

	// Prebuilt so Allow does not allocate a closure per request.
	doneClosed, doneProbe func(success bool)
}

// NewBreaker returns a closed Breaker.
func NewBreaker(o BreakerOptions) *Breaker {
	if o.ConsecutiveFailures <= 0 {
		o.ConsecutiveFailures = 5
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 30 * time.Second
	}
	if o.HalfOpenMaxProbes <= 0 {
		o.HalfOpenMaxProbes = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	b := &Breaker{opts: o}
	b.doneClosed = b.closedDone
	b.doneProbe = b.probeDone
	return b
}

// State returns the current state. An open breaker whose OpenFor has passed
// still reports Open until the next Allow moves it to half-open.
func (b *Breaker) State() State { return State(b.state.Load()) }

// Allow asks to send one request. If ok, the caller must call done exactly
// once with the request's outcome; if not ok, the request must be failed
// fast (the proxy answers 503) and done is nil.
func (b *Breaker) Allow() (done func(success bool), ok bool) {
	if State(b.state.Load()) == Closed {
		return b.doneClosed, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch State(b.state.Load()) {
	case Closed: // closed between the atomic read and the lock
		return b.doneClosed, true
	case Open:
		now := b.opts.Now()
		if now.Sub(b.openedAt) < b.opts.OpenFor {
			return nil, false
		}
		b.setLocked(HalfOpen)
		b.probes, b.halfOpenAt = 0, now
	}
	if b.probes >= b.opts.HalfOpenMaxProbes {
		// Probes that have not answered within OpenFor are presumed hung: a
		// lost done must not keep the breaker half-open, rejecting all
		// traffic, forever. Their late results still count if they come.
		now := b.opts.Now()
		if now.Sub(b.halfOpenAt) < b.opts.OpenFor {
			return nil, false
		}
		b.probes, b.halfOpenAt = 0, now
	}
	b.probes++
	return b.doneProbe, true
}

// closedDone records the outcome of a request admitted while closed. A
// result that arrives after the breaker left Closed is ignored: only probes
// decide a half-open breaker.
func (b *Breaker) closedDone(success bool) {
	if success {
		if b.failures.Load() != 0 {
			b.failures.Store(0)
		}
		return
	}
	if b.failures.Add(1) < int32(b.opts.ConsecutiveFailures) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if State(b.state.Load()) == Closed && b.failures.Load() >= int32(b.opts.ConsecutiveFailures) {
		b.openLocked()
	}
}

// probeDone records a half-open probe's outcome.
func (b *Breaker) probeDone(success bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.probes > 0 {
		b.probes--
	}
	if State(b.state.Load()) != HalfOpen {
		return // a concurrent probe already decided
	}
	if success {
		b.failures.Store(0)
		b.setLocked(Closed)
		return
	}
	b.openLocked()
}

func (b *Breaker) openLocked() {
	b.openedAt = b.opts.Now()
	b.failures.Store(0)
	b.setLocked(Open)
}

func (b *Breaker) setLocked(to State) {
	from := State(b.state.Swap(int32(to)))
	if from != to && b.opts.OnStateChange != nil {
		b.opts.OnStateChange(from, to)
	}
}
