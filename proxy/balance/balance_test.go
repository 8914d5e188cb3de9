package balance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a manual clock; safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func newClock() *fakeClock                   { c := &fakeClock{}; c.ns.Store(1e18); return c }
func addrs(n int) []string                   { return addrsFrom(0, n) }
func addrsFrom(first, n int) (out []string) {
	for i := range n {
		out = append(out, fmt.Sprintf("10.0.0.%d:80", first+i+1))
	}
	return out
}

func statsOf(t *testing.T, b *Balancer, addr string) Stats {
	t.Helper()
	for _, s := range b.Stats() {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("endpoint %s not in Stats", addr)
	return Stats{}
}

func TestNoEndpoints(t *testing.T) {
	t.Parallel()
	b := New(Options{})
	if _, err := b.Pick(); !errors.Is(err, ErrNoEndpoints) {
		t.Fatalf("Pick on a new balancer: err = %v, want ErrNoEndpoints", err)
	}
	b.Update(addrs(2))
	b.Update(nil)
	if _, err := b.Pick(); !errors.Is(err, ErrNoEndpoints) {
		t.Fatalf("Pick after Update(nil): err = %v, want ErrNoEndpoints", err)
	}
}

// TestPrefersFaster simulates sequential traffic where each endpoint answers
// in a fixed time and checks that the share of the fastest is what peak-EWMA
// promises: nearly everything, while slower endpoints are still re-probed
// now and then as their cost decays.
func TestPrefersFaster(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		latencies []time.Duration
		minFast   float64 // minimum share of endpoint 0 (the fastest)
		maxSlow   float64 // maximum share of the last (slowest) endpoint
	}{
		{"two endpoints 10ms vs 50ms", []time.Duration{10 * time.Millisecond, 50 * time.Millisecond}, 0.95, 0.05},
		// With three endpoints the fastest is in 2/3 of the sampled pairs, so
		// P2C gives it about 2/3; the slowest loses every comparison.
		{"three endpoints 5/20/100ms", []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond}, 0.6, 0.02},
		{"close latencies 10ms vs 14ms", []time.Duration{10 * time.Millisecond, 14 * time.Millisecond}, 0.7, 0.3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			b := New(Options{Now: clk.Now})
			eps := addrs(len(tc.latencies))
			lat := map[string]time.Duration{}
			for i, a := range eps {
				lat[a] = tc.latencies[i]
			}
			b.Update(eps)
			const n = 5000
			count := map[string]int{}
			for range n {
				p, err := b.Pick()
				if err != nil {
					t.Fatal(err)
				}
				count[p.Addr]++
				clk.Advance(lat[p.Addr])
				p.Done(lat[p.Addr], false)
			}
			fast := float64(count[eps[0]]) / n
			slow := float64(count[eps[len(eps)-1]]) / n
			if fast < tc.minFast || slow > tc.maxSlow {
				t.Fatalf("shares %v of %d: fastest %.3f (want >= %.2f), slowest %.3f (want <= %.2f)",
					count, n, fast, tc.minFast, slow, tc.maxSlow)
			}
		})
	}
}

// TestSlowdownIsSeenAtOnce checks the "peak" in peak-EWMA: one slow answer
// moves the estimate to that latency immediately, so the next picks avoid it.
func TestSlowdownIsSeenAtOnce(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New(Options{Now: clk.Now})
	b.Update([]string{"a:1", "b:1"})
	// Both answer in 10ms for a while.
	for range 200 {
		p, _ := b.Pick()
		clk.Advance(time.Millisecond)
		p.Done(10*time.Millisecond, false)
	}
	// a has one 1s answer.
	for i := 0; ; i++ {
		if i == 100000 {
			t.Fatal("a:1 not picked in 100000 requests")
		}
		p, _ := b.Pick()
		if p.Addr == "a:1" {
			p.Done(time.Second, false)
			break
		}
		clk.Advance(time.Millisecond)
		p.Done(10*time.Millisecond, false)
	}
	if got := statsOf(t, b, "a:1").EWMA; got < 900*time.Millisecond {
		t.Fatalf("EWMA of a after a 1s answer = %v, want about 1s", got)
	}
	for range 100 {
		p, _ := b.Pick()
		if p.Addr == "a:1" {
			t.Fatalf("picked a within 100 requests of its 1s answer")
		}
		clk.Advance(time.Millisecond)
		p.Done(10*time.Millisecond, false)
	}
}

// TestInflightPenaltySpreads holds every pick open (no Done) so that only the
// in-flight penalty distinguishes equal endpoints: P2C must then keep their
// loads within a few requests of each other.
func TestInflightPenaltySpreads(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 4, 8, 16} {
		t.Run(fmt.Sprintf("%d endpoints", n), func(t *testing.T) {
			t.Parallel()
			b := New(Options{Now: newClock().Now})
			b.Update(addrs(n))
			held := make([]*Pick, 0, 100*n)
			for range 100 * n {
				p, err := b.Pick()
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, p)
			}
			lo, hi := int64(1<<62), int64(0)
			for _, s := range b.Stats() {
				lo, hi = min(lo, s.Inflight), max(hi, s.Inflight)
			}
			// The spread is random (P2C samples with the runtime's source).
			// Simulated 1.5M times per size, it exceeded 8 in 1.9e-5 of runs
			// with 8 endpoints and 1.1e-4 with 16 (a flake about every 7000
			// runs), never passed 11, and its tail falls about five-fold per
			// step: past 13 is about 3e-8. Uniform random picks would
			// spread 27 (8 endpoints) and 34 (16) on average.
			const maxSpread = 13
			if hi-lo > maxSpread {
				t.Fatalf("in-flight per endpoint ranges %d..%d, want within %d (P2C with an in-flight penalty; uniform random picks spread about 27 with 8 endpoints, 34 with 16)", lo, hi, maxSpread)
			}
			for _, p := range held {
				p.Done(time.Millisecond, false)
			}
			for _, s := range b.Stats() {
				if s.Inflight != 0 {
					t.Fatalf("%s: in-flight %d after every Done, want 0", s.Addr, s.Inflight)
				}
			}
		})
	}
}

// Tests that drive failures use DefaultRTT equal to the 1ms answers they
// send, so that a failing endpoint (whose estimate failures never lower) ties
// with healthy ones instead of being avoided by latency before it is ejected.

// driveUntil picks repeatedly, failing picks of the addresses in failing,
// until cond holds or limit picks were made; it returns the failures sent.
func driveUntil(t *testing.T, b *Balancer, failing map[string]bool, limit int, cond func() bool) int {
	t.Helper()
	fails := 0
	for range limit {
		if cond() {
			return fails
		}
		p, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		f := failing[p.Addr]
		if f {
			fails++
		}
		p.Done(time.Millisecond, f)
	}
	if !cond() {
		t.Fatalf("condition not reached within %d picks", limit)
	}
	return fails
}

// assertNotPicked makes n picks (succeeding) and fails if addr is among them.
func assertNotPicked(t *testing.T, b *Balancer, addr string, n int, when string) {
	t.Helper()
	for range n {
		p, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		if p.Addr == addr {
			t.Fatalf("%s: %s picked while ejected", when, addr)
		}
		p.Done(time.Millisecond, false)
	}
}

func TestEjectionAndProbeBack(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var events []string
	b := New(Options{Now: clk.Now, DefaultRTT: time.Millisecond, ConsecutiveFailures: 5, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 100 * time.Second,
		OnEjection: func(addr string, ejected bool, until time.Time) {
			if ejected {
				events = append(events, fmt.Sprintf("%s ejected for %v", addr, until.Sub(clk.Now())))
			} else {
				events = append(events, addr+" returned")
			}
		}})
	eps := addrs(3)
	bad := eps[0]
	b.Update(eps)

	fails := driveUntil(t, b, map[string]bool{bad: true}, 10000, func() bool { return statsOf(t, b, bad).Ejected })
	if fails != 5 {
		t.Fatalf("ejected after %d failures, want 5", fails)
	}
	// An ejection starts when the failing answer arrives: the pick's time
	// plus its round-trip time (1ms here).
	const rtt = time.Millisecond
	if got := statsOf(t, b, bad).EjectedUntil.Sub(clk.Now()); got != 30*time.Second+rtt {
		t.Fatalf("first ejection lasts %v, want 30s from the failed answer", got-rtt)
	}
	assertNotPicked(t, b, bad, 500, "first ejection")

	// Each step: go to 1ms before the ejection ends (no pick of bad), then
	// to its end: exactly one probe; answer it and check what follows.
	steps := []struct {
		name     string
		fail     bool
		ejectFor time.Duration // 0: back in rotation
	}{
		{"probe fails: ejected 60s", true, 60 * time.Second},
		{"probe fails again: 120s capped at 100s", true, 100 * time.Second},
		{"probe succeeds: returned", false, 0},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			clk.Advance(statsOf(t, b, bad).EjectedUntil.Sub(clk.Now()) - time.Millisecond)
			assertNotPicked(t, b, bad, 100, "1ms before the ejection ends")
			clk.Advance(time.Millisecond)
			probe, err := b.Pick()
			if err != nil {
				t.Fatal(err)
			}
			if probe.Addr != bad || !probe.Probe() {
				t.Fatalf("first pick after the ejection = %s probe=%v, want the probe of %s", probe.Addr, probe.Probe(), bad)
			}
			// While the probe is out nobody else is sent to bad.
			assertNotPicked(t, b, bad, 100, "probe in flight")
			probe.Done(rtt, st.fail)
			s := statsOf(t, b, bad)
			if st.ejectFor == 0 {
				if s.Ejected {
					t.Fatalf("after a successful probe %s is still ejected", bad)
				}
				picked := 0
				for range 300 {
					if pickedDone(b, bad, time.Millisecond, false) {
						picked++
					}
				}
				if picked == 0 {
					t.Fatalf("%s not picked in 300 requests after returning", bad)
				}
				return
			}
			if got := s.EjectedUntil.Sub(clk.Now()) - rtt; !s.Ejected || got != st.ejectFor {
				t.Fatalf("after a failed probe: ejected=%v for %v, want ejected for %v", s.Ejected, got, st.ejectFor)
			}
		})
	}
	// OnEjection saw every transition (durations from the pick, plus the 1ms answer).
	want := bad + " ejected for 30.001s," + bad + " ejected for 1m0.001s," + bad + " ejected for 1m40.001s," + bad + " returned"
	if got := strings.Join(events, ","); got != want {
		t.Fatalf("OnEjection events:\n%s\nwant\n%s", got, want)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		endpoints, percent, wantEjected int
	}{
		{4, 50, 2},
		{10, 20, 2},
		{10, 0, 5}, // default 50
		{3, 100, 3},
		{1, 50, 1}, // at least one may always be ejected
		{3, 10, 1}, // 10% of 3 rounds to 0, raised to 1
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d endpoints %d%%", tc.endpoints, tc.percent), func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			b := New(Options{Now: clk.Now, DefaultRTT: time.Millisecond, MaxEjectionPercent: tc.percent, ConsecutiveFailures: 3})
			eps := addrs(tc.endpoints)
			b.Update(eps)
			all := map[string]bool{}
			for _, a := range eps {
				all[a] = true
			}
			// Everything fails for a long while: far more failures than
			// needed to eject every endpoint.
			for range 200 * tc.endpoints {
				p, err := b.Pick()
				if err != nil {
					t.Fatalf("Pick with every endpoint failing: %v (panic mode must still pick)", err)
				}
				p.Done(time.Millisecond, true)
			}
			got := 0
			for _, s := range b.Stats() {
				if s.Ejected {
					got++
				}
			}
			if got != tc.wantEjected {
				t.Fatalf("ejected %d of %d, want %d", got, tc.endpoints, tc.wantEjected)
			}
		})
	}
}

func TestPanicModePicksWhenAllEjected(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New(Options{Now: clk.Now, MaxEjectionPercent: 100, ConsecutiveFailures: 1})
	b.Update([]string{"a:1", "b:1"})
	driveUntil(t, b, map[string]bool{"a:1": true, "b:1": true}, 100, func() bool {
		return statsOf(t, b, "a:1").Ejected && statsOf(t, b, "b:1").Ejected
	})
	seen := map[string]int{}
	for range 200 {
		p, err := b.Pick()
		if err != nil {
			t.Fatalf("Pick with every endpoint ejected: %v, want panic-mode pick", err)
		}
		if p.Probe() {
			t.Fatalf("probe handed out before any ejection ended")
		}
		seen[p.Addr]++
		p.Done(time.Millisecond, true)
	}
	if seen["a:1"] == 0 || seen["b:1"] == 0 {
		t.Fatalf("panic mode picks %v, want both endpoints used", seen)
	}
}

func TestUpdateKeepsStats(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New(Options{Now: clk.Now, ConsecutiveFailures: 2, DefaultRTT: time.Millisecond})
	b.Update([]string{"a:1", "b:1", "slow:1"})
	// slow answers in 200ms once (a peak), bad is ejected, a request to a
	// stays in flight across the Update.
	driveUntil(t, b, nil, 1000, func() bool {
		return pickedDone(b, "slow:1", 200*time.Millisecond, false)
	})
	driveUntil(t, b, map[string]bool{"b:1": true}, 1000, func() bool { return statsOf(t, b, "b:1").Ejected })
	var held *Pick
	for range 1000 {
		p, _ := b.Pick()
		if p.Addr == "a:1" {
			held = p
			break
		}
		p.Done(time.Millisecond, false)
	}
	if held == nil {
		t.Fatal("a:1 not picked in 1000 requests")
	}

	b.Update([]string{"slow:1", "b:1", "a:1", "new:1", "new:1"})

	st := b.Stats()
	if len(st) != 4 {
		t.Fatalf("Stats after Update has %d endpoints, want 4 (duplicates merged): %+v", len(st), st)
	}
	if s := statsOf(t, b, "slow:1"); s.EWMA < 190*time.Millisecond {
		t.Errorf("slow:1 EWMA after Update = %v, want its 200ms peak kept", s.EWMA)
	}
	if s := statsOf(t, b, "b:1"); !s.Ejected {
		t.Errorf("b:1 lost its ejection across Update")
	}
	if s := statsOf(t, b, "a:1"); s.Inflight != 1 {
		t.Errorf("a:1 in-flight after Update = %d, want 1", s.Inflight)
	}
	if s := statsOf(t, b, "new:1"); s.EWMA != time.Millisecond || s.Ejected {
		t.Errorf("new:1 = %+v, want a fresh endpoint at DefaultRTT", s)
	}
	held.Done(time.Millisecond, false)
	if s := statsOf(t, b, "a:1"); s.Inflight != 0 {
		t.Errorf("a:1 in-flight after Done = %d, want 0", s.Inflight)
	}

	// Removing an ejected endpoint frees its share of MaxEjectionPercent.
	b.Update([]string{"a:1", "new:1"})
	if b.ejected.Load() != 0 {
		t.Errorf("ejected count after removing the ejected endpoint = %d, want 0", b.ejected.Load())
	}
}

// pickedDone makes one pick, answers it with rtt/failed if it chose addr
// (else with 1ms success), and reports whether it chose addr.
func pickedDone(b *Balancer, addr string, rtt time.Duration, failed bool) bool {
	p, _ := b.Pick()
	if p.Addr == addr {
		p.Done(rtt, failed)
		return true
	}
	p.Done(time.Millisecond, false)
	return false
}

// TestConcurrent runs Pick/Done from many goroutines with failures while the
// endpoint list keeps changing; run with -race. At the end every in-flight
// count is zero and the ejected counter agrees with the endpoints' states.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	b := New(Options{ConsecutiveFailures: 3, BaseEjectionTime: time.Millisecond, MaxEjectionPercent: 100})
	b.Update(addrs(8))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p, err := b.Pick()
				if err != nil {
					t.Error(err)
					return
				}
				p.Done(time.Duration(rand.IntN(1000))*time.Microsecond, rand.IntN(4) == 0)
			}
		})
	}
	wg.Go(func() {
		for i := range 150 {
			b.Update(addrsFrom(i%4, 4+i%5))
			time.Sleep(100 * time.Microsecond)
		}
		close(stop)
	})
	wg.Wait()
	ejected := 0
	for _, s := range b.Stats() {
		if s.Inflight != 0 {
			t.Errorf("%s: in-flight %d after all Done", s.Addr, s.Inflight)
		}
		if s.Ejected {
			ejected++
		}
	}
	if int(b.ejected.Load()) != ejected {
		t.Errorf("ejected counter %d, endpoints ejected %d", b.ejected.Load(), ejected)
	}
}

func BenchmarkPickDone(b *testing.B) {
	for _, n := range []int{2, 10, 100} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			bal := New(Options{})
			bal.Update(addrs(n))
			b.ReportAllocs()
			for b.Loop() {
				p, _ := bal.Pick()
				p.Done(time.Millisecond, false)
			}
		})
		b.Run(fmt.Sprintf("endpoints=%d/parallel", n), func(b *testing.B) {
			bal := New(Options{})
			bal.Update(addrs(n))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p, _ := bal.Pick()
					p.Done(time.Millisecond, false)
				}
			})
		})
	}
	b.Run("endpoints=10/one-ejected", func(b *testing.B) {
		bal := New(Options{DefaultRTT: time.Millisecond, ConsecutiveFailures: 1, BaseEjectionTime: time.Hour})
		bal.Update(addrs(10))
		for i := 0; !pickedDone(bal, addrs(1)[0], time.Millisecond, true); i++ {
			if i > 1000 {
				b.Fatal("endpoint never picked")
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			p, _ := bal.Pick()
			p.Done(time.Millisecond, false)
		}
	})
}

// TestSingleEndpointEjection: with one endpoint there is nothing to fail
// over to, so it is still picked while ejected (panic mode), yet it is
// probed when its time is up so that its state does not stay ejected.
func TestSingleEndpointEjection(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New(Options{Now: clk.Now, DefaultRTT: time.Millisecond, ConsecutiveFailures: 2, BaseEjectionTime: 10 * time.Second})
	b.Update([]string{"only:1"})
	for range 2 {
		p, _ := b.Pick()
		p.Done(time.Millisecond, true)
	}
	if !statsOf(t, b, "only:1").Ejected {
		t.Fatal("not ejected after 2 failures")
	}
	for range 10 {
		p, err := b.Pick()
		if err != nil || p.Addr != "only:1" || p.Probe() {
			t.Fatalf("Pick while ejected = %v, %v, want only:1 in panic mode (no probe)", p, err)
		}
		p.Done(time.Millisecond, false)
	}
	clk.Advance(10*time.Second + time.Millisecond) // ejected when the 1ms answer arrived
	p, _ := b.Pick()
	if !p.Probe() {
		t.Fatal("no probe after the ejection time")
	}
	p.Done(time.Millisecond, false)
	if statsOf(t, b, "only:1").Ejected {
		t.Fatal("still ejected after a successful probe")
	}
}
