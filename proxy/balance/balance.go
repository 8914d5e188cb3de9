package balance

import (
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoEndpoints is returned by Pick when the upstream has no endpoints.
var ErrNoEndpoints = errors.New("balance: no endpoints")

// Defaults for a zero Options field.
const (
	DefaultDecay               = 10 * time.Second // Linkerd's default peak-EWMA decay
	DefaultRTT                 = 30 * time.Millisecond
	DefaultInflightPenalty     = 1.0
	DefaultConsecutiveFailures = 5 // Envoy's consecutive_5xx default
	DefaultBaseEjectionTime    = 30 * time.Second
	DefaultMaxEjectionTime     = 300 * time.Second
	DefaultMaxEjectionPercent  = 50
	DefaultFailoverFailures    = 2
)

// Options tune a Balancer. A zero field takes the default named beside it.
type Options struct {
	// Decay is the time constant of the peak-EWMA: a sample's weight falls to
	// 1/e after Decay, and an idle endpoint's cost falls to 1/e of its value
	// after Decay without samples. Default DefaultDecay.
	Decay time.Duration
	// DefaultRTT is the latency assumed for an endpoint with no samples yet.
	// Non-zero so that a new endpoint is not flooded before it has answered.
	DefaultRTT time.Duration
	// InflightPenalty k scales the in-flight multiplier: cost = ewma *
	// (1 + k*inflight). 1 is the classic peak-EWMA formula; negative disables
	// the penalty. Default DefaultInflightPenalty.
	InflightPenalty float64
	// ConsecutiveFailures ejects an endpoint after this many failed requests
	// in a row. Negative disables ejection. Default 5.
	ConsecutiveFailures int
	// FailoverFailures replaces ConsecutiveFailures for an endpoint whose
	// priority level has another level behind it to fail over to: traffic
	// has somewhere to go, so the level is given up sooner, and with the
	// proxy's default of two retries the request that saw the failures is
	// retried on the next level. Negative disables it (ConsecutiveFailures
	// applies). Default DefaultFailoverFailures.
	FailoverFailures int
	// BaseEjectionTime is the first ejection's length; each further ejection
	// of the same endpoint doubles it. Default 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps the doubling. Default 300s.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent bounds the share of a priority level's endpoints
	// ejected at once; at least one endpoint may always be ejected (as in
	// Envoy), because with few endpoints a percentage rounds down to zero.
	// A level with another level behind it is not bounded: ejecting all of
	// it is how traffic fails over. Default 50.
	MaxEjectionPercent int
	// OnEjection, if set, is called when an endpoint is ejected (ejected
	// true, also after a failed probe) or returned by a successful probe
	// (false), for metrics and logs. It runs with the Balancer's lock held
	// and must not call the Balancer.
	OnEjection func(addr string, ejected bool, until time.Time)
	// Now is the clock; nil means time.Now. Tests may also use testing/synctest
	// with the default clock.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Decay <= 0 {
		o.Decay = DefaultDecay
	}
	if o.DefaultRTT <= 0 {
		o.DefaultRTT = DefaultRTT
	}
	if o.InflightPenalty == 0 {
		o.InflightPenalty = DefaultInflightPenalty
	} else if o.InflightPenalty < 0 {
		o.InflightPenalty = 0
	}
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if o.FailoverFailures == 0 {
		o.FailoverFailures = DefaultFailoverFailures
	} else if o.FailoverFailures < 0 {
		o.FailoverFailures = o.ConsecutiveFailures
	}
	if o.BaseEjectionTime <= 0 {
		o.BaseEjectionTime = DefaultBaseEjectionTime
	}
	if o.MaxEjectionTime <= 0 {
		o.MaxEjectionTime = DefaultMaxEjectionTime
	}
	if o.MaxEjectionTime < o.BaseEjectionTime {
		o.MaxEjectionTime = o.BaseEjectionTime
	}
	if o.MaxEjectionPercent <= 0 {
		o.MaxEjectionPercent = DefaultMaxEjectionPercent
	}
	if o.MaxEjectionPercent > 100 {
		o.MaxEjectionPercent = 100
	}
	return o
}

// Balancer chooses endpoints for one upstream. It is safe for concurrent use.
type Balancer struct {
	opts  Options
	epoch time.Time // origin of the int64 nanosecond clock used internally
	decay float64   // opts.Decay in nanoseconds

	// set is the current endpoint list; it is replaced, never mutated.
	set atomic.Pointer[endpointSet]
	// ejected counts ejected (or probing) endpoints of the current set. Pick
	// reads it to skip all ejection logic in the common case of zero.
	ejected atomic.Int32

	// mu serialises Update and ejection transitions so that ejected stays
	// equal to the number of ejected endpoints in set.
	mu sync.Mutex
	// retired holds, per priority, the picks of endpoints that left that
	// priority (removed, or moved to another), so PicksByPriority only
	// grows. Under mu.
	retired map[int32]uint64

	pool sync.Pool // *Pick, so that Pick+Done allocate nothing
}

// New returns a Balancer with no endpoints.
func New(opts Options) *Balancer {
	opts = opts.withDefaults()
	b := &Balancer{opts: opts, decay: float64(opts.Decay)}
	if opts.Now == nil {
		b.epoch = time.Now()
	} else {
		b.epoch = opts.Now()
	}
	b.set.Store(&endpointSet{})
	b.retired = map[int32]uint64{}
	b.pool.New = func() any { return &Pick{} }
	return b
}

// now returns nanoseconds since b.epoch. With the default clock it uses
// time.Since, which reads only the monotonic clock: half the cost of
// time.Now, which also reads the wall clock, and the clock read is the
// largest single cost of Pick+Done.
func (b *Balancer) now() int64 {
	if b.opts.Now == nil {
		return int64(time.Since(b.epoch))
	}
	return int64(b.opts.Now().Sub(b.epoch))
}

// Member is one endpoint with its failover priority: 0 is preferred, and
// endpoints of priority n get requests only while no endpoint of a lower
// priority is available.
type Member struct {
	Addr     string
	Priority int32
}

// endpointSet is one Update's endpoints: all of them in Update order, and
// the same endpoints grouped into priority levels, lowest priority first,
// no level empty.
type endpointSet struct {
	all    []*endpoint
	levels []level
}

type level struct {
	priority int32
	eps      []*endpoint
}

// levelOf returns the index of the level with priority prio, or -1.
func (s *endpointSet) levelOf(prio int32) int {
	for i := range s.levels {
		if s.levels[i].priority == prio {
			return i
		}
	}
	return -1
}

// Update replaces the endpoint list with endpoints, all at priority 0.
func (b *Balancer) Update(endpoints []string) {
	ms := make([]Member, len(endpoints))
	for i, a := range endpoints {
		ms[i] = Member{Addr: a}
	}
	b.UpdateMembers(ms)
}

// UpdateMembers replaces the endpoint list. Endpoints present before and
// after keep their latency estimate, in-flight count and ejection state
// (also when their priority changes); new ones start from DefaultRTT. A
// duplicate address keeps its first (listed) priority. Requests already
// picked on a removed endpoint complete normally; their Done only updates
// that endpoint's (now unreachable) statistics.
func (b *Balancer) UpdateMembers(members []Member) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.set.Load()
	byAddr := make(map[string]*endpoint, len(old.all))
	for _, e := range old.all {
		byAddr[e.addr] = e
	}
	next := &endpointSet{all: make([]*endpoint, 0, len(members))}
	seen := make(map[string]bool, len(members))
	var ejected int32
	for _, m := range members {
		if seen[m.Addr] {
			continue
		}
		seen[m.Addr] = true
		e := byAddr[m.Addr]
		if e == nil {
			e = &endpoint{addr: m.Addr}
			e.prio.Store(m.Priority)
			e.ewmaBits.Store(math.Float64bits(float64(b.opts.DefaultRTT)))
			e.stamp.Store(b.now())
		} else if p := e.prio.Load(); p != m.Priority {
			b.retired[p] += e.picks.Swap(0)
			e.prio.Store(m.Priority)
		}
		if e.state.Load() != stateHealthy {
			ejected++
		}
		next.all = append(next.all, e)
	}
	for _, e := range old.all {
		if !seen[e.addr] {
			e.removed.Store(true)
			b.retired[e.prio.Load()] += e.picks.Swap(0)
		}
	}
	byPrio := slices.Clone(next.all)
	slices.SortStableFunc(byPrio, func(a, c *endpoint) int { return cmp.Compare(a.prio.Load(), c.prio.Load()) })
	for i := 0; i < len(byPrio); {
		j := i + 1
		for j < len(byPrio) && byPrio[j].prio.Load() == byPrio[i].prio.Load() {
			j++
		}
		next.levels = append(next.levels, level{priority: byPrio[i].prio.Load(), eps: byPrio[i:j:j]})
		i = j
	}
	b.set.Store(next)
	b.ejected.Store(ejected)
}

// Pick chooses an endpoint for one request, among the endpoints of the
// lowest priority that has one available (in rotation, or due for its
// probe). The caller must call Done on the result exactly once and must not
// use it afterwards (Picks are recycled).
func (b *Balancer) Pick() (*Pick, error) {
	s := b.set.Load()
	if len(s.all) == 0 {
		return nil, ErrNoEndpoints
	}
	var e *endpoint
	probe := false
	now := b.now()
	if b.ejected.Load() != 0 {
		e, probe = b.pickWithEjections(s, now)
	} else if eps := s.levels[0].eps; len(eps) == 1 {
		e = eps[0]
	} else {
		e = b.p2c(eps, rand.IntN(len(eps)), rand.IntN(len(eps)-1), now)
	}
	e.inflight.Add(1)
	e.picks.Add(1)
	p := b.pool.Get().(*Pick)
	p.Addr, p.Priority, p.ep, p.b, p.probe, p.at = e.addr, e.prio.Load(), e, b, probe, now
	return p, nil
}

// p2c compares endpoints i and j' (j' = j, shifted past i so the two differ).
func (b *Balancer) p2c(eps []*endpoint, i, j int, now int64) *endpoint {
	if j >= i {
		j++
	}
	a, c := eps[i], eps[j]
	if b.cost(c, now) < b.cost(a, now) {
		return c
	}
	return a
}

// pickWithEjections is the slow path, taken only while some endpoint is
// ejected. Level by level, lowest priority first: hand out a due probe of
// the level, otherwise run P2C among its healthy endpoints, otherwise go on
// to the next level. When no level has a healthy endpoint: P2C among all
// of them, panic mode.
func (b *Balancer) pickWithEjections(s *endpointSet, now int64) (*endpoint, bool) {
	for _, l := range s.levels {
		if e, probe, ok := b.pickLevel(l.eps, now); ok {
			return e, probe
		}
	}
	eps := s.all
	n := len(eps)
	if n == 1 {
		return eps[0], false
	}
	return b.p2c(eps, rand.IntN(n), rand.IntN(n-1), now), false
}

// pickLevel picks within one level; ok is false when every endpoint of it
// is ejected and none is due for a probe.
func (b *Balancer) pickLevel(eps []*endpoint, now int64) (e *endpoint, probe, ok bool) {
	for _, e := range eps {
		if e.state.Load() != stateHealthy && now >= e.until.Load() && b.claimProbe(e, now) {
			return e, true, true
		}
	}
	n := len(eps)
	// Walk from two random offsets to the next healthy endpoint. Endpoints
	// just after an ejected run are slightly favoured; acceptable for the
	// short time an ejection lasts, and it keeps the path allocation-free.
	a := nextHealthy(eps, rand.IntN(n))
	if a < 0 {
		return nil, false, false
	}
	c := nextHealthy(eps, rand.IntN(n))
	if c == a {
		c = nextHealthy(eps, (a+1)%n)
	}
	if c < 0 || c == a || b.cost(eps[a], now) <= b.cost(eps[c], now) {
		return eps[a], false, true
	}
	return eps[c], false, true
}

// Fallback reports whether a level stands behind the one Pick serves from
// now: while it does, a failing level is given up by ejection and traffic
// moves on, so a circuit breaker over the whole upstream should not count
// its failures. False with one level, and in panic mode.
func (b *Balancer) Fallback() bool {
	s := b.set.Load()
	if b.ejected.Load() == 0 {
		return len(s.levels) > 1
	}
	for i, l := range s.levels {
		if nextHealthy(l.eps, 0) >= 0 {
			return i < len(s.levels)-1
		}
	}
	return false
}

// Unreachable reports that a connection to addr could not be opened. An
// endpoint whose level has another behind it is ejected at once (the
// request's Done still counts the failure): a refused connection is the
// clearest sign an endpoint is gone, and there is somewhere else to go.
// Elsewhere it is only the failure Done counts.
func (b *Balancer) Unreachable(addr string) {
	s := b.set.Load()
	if len(s.levels) < 2 {
		return
	}
	for _, e := range s.all {
		if e.addr == addr {
			if li := s.levelOf(e.prio.Load()); li >= 0 && li < len(s.levels)-1 && e.state.Load() == stateHealthy {
				b.eject(e, b.now())
			}
			return
		}
	}
}

func nextHealthy(eps []*endpoint, start int) int {
	for k := range eps {
		i := (start + k) % len(eps)
		if eps[i].state.Load() == stateHealthy {
			return i
		}
	}
	return -1
}

// claimProbe lets exactly one request probe a due endpoint. The probe holds a
// lease of BaseEjectionTime: if its Done never comes (a hung request), a new
// probe may be sent when the lease ends rather than the endpoint staying
// ejected forever.
func (b *Balancer) claimProbe(e *endpoint, now int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e.state.Load() == stateHealthy || now < e.until.Load() {
		return false
	}
	e.state.Store(stateProbing)
	e.until.Store(now + int64(b.opts.BaseEjectionTime))
	return true
}

// cost is the peak-EWMA load of e at time now.
func (b *Balancer) cost(e *endpoint, now int64) float64 {
	ewma := math.Float64frombits(e.ewmaBits.Load())
	if dt := now - e.stamp.Load(); dt > 0 {
		ewma *= math.Exp(-float64(dt) / b.decay)
	}
	return (ewma + 1) * (1 + b.opts.InflightPenalty*float64(e.inflight.Load()))
}

// Stats describes one endpoint, for metrics and /config.
type Stats struct {
	Addr                string
	EWMA                time.Duration // decayed to now
	Inflight            int64
	ConsecutiveFailures int32
	Ejected             bool // ejected or being probed
	EjectedUntil        time.Time
	Ejections           int32 // consecutive ejections, the exponent of the backoff
	Priority            int32
	Picks               uint64 // since it joined its priority
}

// Stats returns a snapshot of every endpoint, in Update order.
func (b *Balancer) Stats() []Stats {
	eps := b.set.Load().all
	now := b.now()
	out := make([]Stats, len(eps))
	for i, e := range eps {
		ewma := math.Float64frombits(e.ewmaBits.Load())
		if dt := now - e.stamp.Load(); dt > 0 {
			ewma *= math.Exp(-float64(dt) / b.decay)
		}
		s := Stats{
			Addr:                e.addr,
			EWMA:                time.Duration(ewma),
			Inflight:            e.inflight.Load(),
			ConsecutiveFailures: e.failures.Load(),
			Ejected:             e.state.Load() != stateHealthy,
			Picks:               e.picks.Load(),
		}
		if s.Ejected {
			s.EjectedUntil = b.epoch.Add(time.Duration(e.until.Load()))
		}
		b.mu.Lock()
		s.Ejections = e.ejections
		s.Priority = e.prio.Load()
		b.mu.Unlock()
		out[i] = s
	}
	return out
}

// PicksByPriority returns how many requests each priority has served since
// the Balancer was made: the metric that shows failover happening. Counts
// only grow. A pick racing the Update that moves its endpoint to another
// priority may be counted under the new one, and one racing the Update that
// removes it is lost: exact counts would need a counter shared by every
// Pick of a level, a contended cache line on the hot path.
func (b *Balancer) PicksByPriority() map[int32]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[int32]uint64, len(b.retired)+1)
	for p, n := range b.retired {
		out[p] = n
	}
	for _, e := range b.set.Load().all {
		out[e.prio.Load()] += e.picks.Load()
	}
	return out
}
