package resilience

import (
	"net/http"
	"testing"
)

// The per-request costs the proxy pays: one Allow+done, one Deposit, and
// the classification helpers.
func BenchmarkBreakerClosed(b *testing.B) {
	br := NewBreaker(BreakerOptions{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, ok := br.Allow()
			if !ok {
				b.Fatal("closed breaker rejected")
			}
			done(true)
		}
	})
}

func BenchmarkRetryBudgetDeposit(b *testing.B) {
	rb := NewRetryBudget(RetryBudgetOptions{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rb.Deposit()
		}
	})
}

func BenchmarkClassify(b *testing.B) {
	h := http.Header{"Content-Type": {"application/grpc"}}
	tr := http.Header{"Grpc-Status": {"0"}}
	b.ReportAllocs()
	for b.Loop() {
		if IsRetryable(http.MethodPost, h) || RetryableResponse(200, h, tr) {
			b.Fatal("misclassified")
		}
	}
}
