package balance

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoint states. Probing counts as ejected for MaxEjectionPercent.
const (
	stateHealthy int32 = iota
	stateEjected
	stateProbing
)

// endpoint is the per-address state shared by every Pick of that address.
// Fields read by Pick are atomics; mu only orders EWMA writers, and the
// ejection bookkeeping (ejections, returnedAt) is guarded by Balancer.mu.
type endpoint struct {
	addr string

	ewmaBits atomic.Uint64 // float64 nanoseconds: the peak-EWMA at stamp
	stamp    atomic.Int64  // Balancer clock of the last sample
	mu       sync.Mutex    // serialises observe; readers use the atomics

	inflight atomic.Int64
	picks    atomic.Uint64 // requests since it joined its priority; beside inflight, whose cache line Pick dirties anyway
	failures atomic.Int32  // consecutive failures
	state    atomic.Int32
	until    atomic.Int64 // ejected: end of ejection; probing: end of the probe's lease
	removed  atomic.Bool  // dropped by Update; its ejection no longer counts

	prio       atomic.Int32 // priority level; written by Update under Balancer.mu
	ejections  int32        // exponent of the ejection backoff; under Balancer.mu
	returnedAt int64        // when a probe last returned it; under Balancer.mu
}

// observe folds one round-trip time into the peak-EWMA. A failed request
// counts as at least the current estimate: a backend that fails fast must
// not look faster than one that answers (ejection deals with persistent
// failure; the latency estimate only has to not reward it).
func (e *endpoint) observe(rtt time.Duration, failed bool, now int64, decay float64) {
	sample := float64(rtt)
	e.mu.Lock()
	ewma := math.Float64frombits(e.ewmaBits.Load())
	if failed && sample < ewma {
		sample = ewma
	}
	if sample > ewma {
		ewma = sample // peak: react to a slowdown at once
	} else {
		dt := now - e.stamp.Load()
		if dt < 0 {
			dt = 0
		}
		w := math.Exp(-float64(dt) / decay)
		ewma = ewma*w + sample*(1-w)
	}
	e.ewmaBits.Store(math.Float64bits(ewma))
	e.stamp.Store(now)
	e.mu.Unlock()
}

// reset replaces the estimate with one sample.
func (e *endpoint) reset(rtt time.Duration, now int64) {
	e.mu.Lock()
	e.ewmaBits.Store(math.Float64bits(float64(rtt)))
	e.stamp.Store(now)
	e.mu.Unlock()
}

// Pick is one request's choice of endpoint.
type Pick struct {
	// Addr is the chosen endpoint's address, as given to Update.
	Addr string
	// Priority is the chosen endpoint's priority level (0 unless
	// UpdateMembers gave another).
	Priority int32

	probe bool
	at    int64 // Balancer clock at Pick
	ep    *endpoint
	b     *Balancer
}

// Probe reports whether this request is the probe of an ejected endpoint
// whose ejection time is up: its outcome decides whether the endpoint returns.
func (p *Pick) Probe() bool { return p.probe }

// Done reports the request's outcome: rtt is the time to the response (or to
// the failure) and failed says whether it counts against the endpoint
// (connection error, 5xx, gRPC UNAVAILABLE - the caller classifies). Call it
// exactly once; p must not be used afterwards.
func (p *Pick) Done(rtt time.Duration, failed bool) {
	e, b, probe := p.ep, p.b, p.probe
	// The response arrived rtt after the pick: reading the clock again would
	// cost as much as the rest of Pick and Done together.
	now := p.at + int64(max(rtt, 0))
	*p = Pick{}
	b.pool.Put(p)

	e.inflight.Add(-1)
	if probe && !failed {
		// A returning endpoint starts from its probe's latency: the estimate
		// from before the ejection (or the failures' floor) is stale.
		e.reset(rtt, now)
	} else {
		e.observe(rtt, failed, now, b.decay)
	}
	if probe {
		b.probeDone(e, failed, now)
		return
	}
	if !failed {
		if e.failures.Load() != 0 { // avoid dirtying the cache line on the common path
			e.failures.Store(0)
		}
		return
	}
	f := e.failures.Add(1)
	if f >= int32(b.opts.FailoverFailures) && e.state.Load() == stateHealthy && b.opts.ConsecutiveFailures > 0 && b.hasFallback(e) {
		b.eject(e, now)
		return
	}
	if b.opts.ConsecutiveFailures > 0 && f >= int32(b.opts.ConsecutiveFailures) && e.state.Load() == stateHealthy {
		b.eject(e, now)
	}
}

// eject takes e out of rotation unless that would exceed MaxEjectionPercent.
// If refused, e stays healthy and the next failure tries again.
func (b *Balancer) eject(e *endpoint, now int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e.removed.Load() || e.state.Load() != stateHealthy {
		return
	}
	s := b.set.Load()
	li := s.levelOf(e.prio.Load())
	if li < 0 {
		return
	}
	if li == len(s.levels)-1 {
		// The last level has nowhere to fail over to: keep the bound.
		lv := s.levels[li].eps
		ejected := 0
		for _, x := range lv {
			if x.state.Load() != stateHealthy {
				ejected++
			}
		}
		if ejected >= max(1, len(lv)*b.opts.MaxEjectionPercent/100) {
			return
		}
	}
	// Forgive earlier ejections once the endpoint has stayed in rotation for
	// MaxEjectionTime, so that a rare failure years apart starts short again.
	if e.returnedAt != 0 && now-e.returnedAt > int64(b.opts.MaxEjectionTime) {
		e.ejections = 0
	}
	b.ejectLocked(e, now)
	b.ejected.Add(1)
}

// ejectLocked sets e ejected for base*2^ejections (capped) and raises the
// exponent. b.mu must be held.
func (b *Balancer) ejectLocked(e *endpoint, now int64) {
	d := b.opts.BaseEjectionTime
	for i := int32(0); i < e.ejections && d < b.opts.MaxEjectionTime; i++ {
		d *= 2
	}
	d = min(d, b.opts.MaxEjectionTime)
	e.ejections++
	e.failures.Store(0)
	e.until.Store(now + int64(d))
	e.state.Store(stateEjected)
	if b.opts.OnEjection != nil {
		b.opts.OnEjection(e.addr, true, b.epoch.Add(time.Duration(now)+d))
	}
}

// probeDone returns e to rotation after a successful probe, or ejects it
// again, for longer, after a failed one.
func (b *Balancer) probeDone(e *endpoint, failed bool, now int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e.state.Load() != stateProbing {
		return
	}
	if failed {
		b.ejectLocked(e, now)
		return
	}
	e.failures.Store(0)
	e.returnedAt = now
	e.state.Store(stateHealthy)
	if !e.removed.Load() {
		b.ejected.Add(-1)
	}
	if b.opts.OnEjection != nil {
		b.opts.OnEjection(e.addr, false, time.Time{})
	}
}

// hasFallback reports whether e's level has another level behind it.
func (b *Balancer) hasFallback(e *endpoint) bool {
	s := b.set.Load()
	if len(s.levels) < 2 {
		return false
	}
	li := s.levelOf(e.prio.Load())
	return li >= 0 && li < len(s.levels)-1
}
