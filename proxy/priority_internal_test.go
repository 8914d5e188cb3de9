package proxy

import (
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/proxy/balance"
	"github.com/causeway-mesh/causeway/proxy/resilience"
)

// TestLevelBreaker: while a priority level stands behind the one serving,
// failures are the balancer's to act on and never open the circuit (three
// failing local endpoints fail 6 times before all are ejected, more than the
// breaker's 5); on the last level, or with one level, the circuit opens as
// before.
func TestLevelBreaker(t *testing.T) {
	t.Parallel()
	local := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}
	tests := []struct {
		name    string
		members []balance.Member
		open    bool
	}{
		{name: "local level with a remote behind it", members: []balance.Member{
			{Addr: local[0]}, {Addr: local[1]}, {Addr: local[2]}, {Addr: "10.1.0.1:80", Priority: 1}}},
		{name: "one level", members: []balance.Member{{Addr: local[0]}, {Addr: local[1]}, {Addr: local[2]}}, open: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lb := newBalancer(OutlierPolicy{BaseEjectionTime: Duration(time.Hour)})
			lb.UpdateMembers(tt.members)
			br := failoverBreaker(newBreaker(BreakerPolicy{ConsecutiveFailures: 5, OpenFor: Duration(time.Hour)}), lb)
			failing := map[string]bool{local[0]: true, local[1]: true, local[2]: true}
			for range 20 {
				done, ok := br.Allow()
				if !ok {
					break
				}
				p, err := lb.Pick()
				if err != nil {
					t.Fatal(err)
				}
				failed := failing[p.Addr]
				p.Done(time.Millisecond, failed)
				done(!failed)
			}
			if got := br.State() == resilience.Open; got != tt.open {
				t.Errorf("circuit open = %v, want %v", got, tt.open)
			}
		})
	}
}
