package identity_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the mTLS tests leave no goroutine behind: sources,
// Workload API streams and connections all end with their tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
