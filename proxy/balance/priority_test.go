package balance

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// members puts local addresses at priority 0 and remote ones at 1.
func members(local, remote []string) []Member {
	var out []Member
	for _, a := range local {
		out = append(out, Member{Addr: a})
	}
	for _, a := range remote {
		out = append(out, Member{Addr: a, Priority: 1})
	}
	return out
}

// pickCounts runs n requests, each reported by outcome(addr) as failed or
// not, and counts picks per priority and failed requests.
func pickCounts(t *testing.T, b *Balancer, n int, failing map[string]bool) (byPrio map[int32]int, failed int) {
	t.Helper()
	byPrio = map[int32]int{}
	for range n {
		p, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		byPrio[p.Priority]++
		f := failing[p.Addr]
		if f {
			failed++
		}
		p.Done(time.Millisecond, f)
	}
	return byPrio, failed
}

// TestPriorityFailover walks one upstream with two local endpoints
// (priority 0) and one remote (priority 1) through failure and recovery.
// Each step says which endpoints fail and what share of picks each
// priority must get, and how many failed picks failing over may cost.
func TestPriorityFailover(t *testing.T) {
	t.Parallel()
	local, remote := addrs(2), addrsFrom(10, 1)
	clk := newClock()
	b := New(Options{Now: clk.Now, DefaultRTT: time.Millisecond, BaseEjectionTime: 10 * time.Second})
	b.UpdateMembers(members(local, remote))
	none := map[string]bool{}
	localDown := map[string]bool{local[0]: true, local[1]: true}
	steps := []struct {
		name      string
		advance   time.Duration
		failing   map[string]bool
		picks     int
		wantPrio0 int // picks at priority 0
		maxFailed int
		fallback  bool // Fallback() after the step
	}{
		{name: "healthy: only priority 0", failing: none, picks: 1000, wantPrio0: 1000, fallback: true},
		// FailoverFailures (2) per local endpoint, so at most 4 failed picks
		// before both are ejected; then the remote serves.
		{name: "local fails: over to priority 1", failing: localDown, picks: 1000, wantPrio0: -4, maxFailed: 4, fallback: false},
		{name: "ejected locals stay out", advance: 5 * time.Second, failing: none, picks: 1000, wantPrio0: 0, fallback: false},
		// After 10 s each local gets one probe; success returns it.
		{name: "ejection ends: back to priority 0", advance: 6 * time.Second, failing: none, picks: 1000, wantPrio0: 998, fallback: true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			clk.Advance(st.advance)
			got, failed := pickCounts(t, b, st.picks, st.failing)
			switch {
			case st.wantPrio0 >= 0 && got[0] < st.wantPrio0:
				t.Errorf("priority 0 got %d of %d picks, want >= %d (by priority %v)", got[0], st.picks, st.wantPrio0, got)
			case st.wantPrio0 == 0 && got[0] != 0:
				t.Errorf("priority 0 got %d picks while ejected", got[0])
			case st.wantPrio0 < 0 && got[0] > -st.wantPrio0:
				t.Errorf("priority 0 got %d picks while failing, want <= %d", got[0], -st.wantPrio0)
			}
			if failed > st.maxFailed {
				t.Errorf("%d failed picks, want <= %d", failed, st.maxFailed)
			}
			if b.Fallback() != st.fallback {
				t.Errorf("Fallback() = %v, want %v", b.Fallback(), st.fallback)
			}
			t.Logf("picks by priority %v, failed %d", got, failed)
		})
	}
	if total := b.PicksByPriority(); total[0]+total[1] != 4000 {
		t.Errorf("PicksByPriority %v does not add up to the 4000 picks", total)
	}
}

// TestPriorityRules covers the rules around levels one case at a time.
func TestPriorityRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, b *Balancer, clk *fakeClock)
	}{
		{"unreachable ejects at once where there is a fallback", func(t *testing.T, b *Balancer, _ *fakeClock) {
			b.UpdateMembers(members(addrs(1), addrsFrom(10, 1)))
			b.Unreachable(addrs(1)[0])
			if !statsOf(t, b, addrs(1)[0]).Ejected {
				t.Fatal("not ejected")
			}
			if got, _ := pickCounts(t, b, 100, nil); got[1] != 100 {
				t.Errorf("picks %v, want all at priority 1", got)
			}
		}},
		{"unreachable is only a failure on the last level", func(t *testing.T, b *Balancer, _ *fakeClock) {
			b.Update(addrs(2))
			b.Unreachable(addrs(1)[0])
			if statsOf(t, b, addrs(1)[0]).Ejected || b.Fallback() {
				t.Fatal("ejected (or a fallback) with a single level")
			}
		}},
		{"a level with a fallback may be ejected whole; the last keeps its bound", func(t *testing.T, b *Balancer, _ *fakeClock) {
			local, remote := addrs(4), addrsFrom(10, 2)
			b.UpdateMembers(members(local, remote))
			failAll := map[string]bool{}
			for _, a := range append(local, remote...) {
				failAll[a] = true
			}
			pickCounts(t, b, 200, failAll)
			ejected := map[int32]int{}
			for _, s := range b.Stats() {
				if s.Ejected {
					ejected[s.Priority]++
				}
			}
			if ejected[0] != 4 || ejected[1] != 1 {
				t.Errorf("ejected by priority %v, want all 4 locals and 1 of 2 remotes (50%%)", ejected)
			}
		}},
		{"every level ejected: panic mode picks among all", func(t *testing.T, b *Balancer, _ *fakeClock) {
			local, remote := addrs(1), addrsFrom(10, 1)
			b.UpdateMembers(members(local, remote))
			pickCounts(t, b, 50, map[string]bool{local[0]: true, remote[0]: true})
			got, _ := pickCounts(t, b, 400, nil)
			if got[0] == 0 || got[1] == 0 || b.Fallback() {
				t.Errorf("panic picks %v (fallback %v), want both priorities and no fallback", got, b.Fallback())
			}
		}},
		{"a priority change keeps the endpoint's state and the counts", func(t *testing.T, b *Balancer, _ *fakeClock) {
			local, remote := addrs(1), addrsFrom(10, 1)
			b.UpdateMembers(members(local, remote))
			b.Unreachable(local[0])
			pickCounts(t, b, 10, nil)
			before := maps.Clone(b.PicksByPriority())
			b.UpdateMembers([]Member{{Addr: local[0], Priority: 2}, {Addr: remote[0], Priority: 1}})
			s := statsOf(t, b, local[0])
			if !s.Ejected || s.Priority != 2 {
				t.Errorf("after the move: %+v, want still ejected at priority 2", s)
			}
			if after := b.PicksByPriority(); after[1] != before[1] || after[0] != before[0] {
				t.Errorf("counts %v became %v across the update", before, after)
			}
			b.Update(nil)
			if after := b.PicksByPriority(); after[1] != before[1] {
				t.Errorf("counts %v became %v when the endpoints left", before, after)
			}
		}},
		{"not ready (left out of the update): over to priority 1; ready again: back at once", func(t *testing.T, b *Balancer, _ *fakeClock) {
			local, remote := addrs(1), addrsFrom(10, 1)
			b.UpdateMembers(members(local, remote))
			b.Unreachable(local[0]) // ejected, then not ready: its ejection is forgotten with it
			b.UpdateMembers(members(nil, remote))
			if got, _ := pickCounts(t, b, 100, nil); got[1] != 100 {
				t.Errorf("local not ready: picks %v, want all at priority 1", got)
			}
			b.UpdateMembers(members(local, remote))
			if got, _ := pickCounts(t, b, 100, nil); got[0] != 100 {
				t.Errorf("local ready again: picks %v, want all at priority 0", got)
			}
		}},
		{"5xx within a level moves to another endpoint of the level first", func(t *testing.T, b *Balancer, _ *fakeClock) {
			local, remote := addrs(2), addrsFrom(10, 1)
			b.UpdateMembers(members(local, remote))
			got, _ := pickCounts(t, b, 500, map[string]bool{local[0]: true})
			if got[1] != 0 || !statsOf(t, b, local[0]).Ejected {
				t.Errorf("picks %v, want none at priority 1 while %s serves, and %s ejected", got, local[1], local[0])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			tt.run(t, New(Options{Now: clk.Now, DefaultRTT: time.Millisecond, BaseEjectionTime: 10 * time.Second}), clk)
		})
	}
}

// BenchmarkPickDonePriority: two levels cost what one does while the first
// serves, and failing over keeps Pick+Done free of allocations.
func BenchmarkPickDonePriority(b *testing.B) {
	for _, down := range []bool{false, true} {
		b.Run(fmt.Sprintf("local=10,remote=2/local-ejected=%v", down), func(b *testing.B) {
			bal := New(Options{BaseEjectionTime: time.Hour})
			bal.UpdateMembers(members(addrs(10), addrsFrom(20, 2)))
			if down {
				for _, a := range addrs(10) {
					bal.Unreachable(a)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				p, _ := bal.Pick()
				p.Done(time.Millisecond, false)
			}
		})
	}
}

// TestPriorityConcurrent runs Pick/Done with failures, Unreachable,
// Fallback and PicksByPriority from many goroutines while UpdateMembers
// keeps moving endpoints between levels; run with -race. At the end every
// in-flight count is zero, the ejected counter agrees with the endpoints'
// states, and every pick is counted under some priority.
func TestPriorityConcurrent(t *testing.T) {
	t.Parallel()
	b := New(Options{ConsecutiveFailures: 3, BaseEjectionTime: time.Millisecond})
	b.UpdateMembers(members(addrs(4), addrsFrom(10, 2)))
	stop := make(chan struct{})
	var picks atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
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
				picks.Add(1)
				if w == 0 && rand.IntN(8) == 0 {
					b.Unreachable(p.Addr)
				}
				_ = b.Fallback()
				p.Done(time.Duration(rand.IntN(1000))*time.Microsecond, rand.IntN(3) == 0)
			}
		})
	}
	wg.Go(func() {
		for i := range 150 {
			var ms []Member
			for j, a := range addrs(6) {
				ms = append(ms, Member{Addr: a, Priority: int32((i + j) % 3)})
			}
			b.UpdateMembers(ms[:3+i%4])
			_ = b.PicksByPriority()
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
	var counted uint64
	for _, n := range b.PicksByPriority() {
		counted += n
	}
	// Picks racing the removal of their endpoint are not counted (see
	// PicksByPriority); they are a sliver of the total.
	if made := uint64(picks.Load()); counted > made || counted < made-made/100 {
		t.Errorf("PicksByPriority adds up to %d, %d picks were made", counted, made)
	}
}
