package spiretest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: servers,
// sources and connections must all be shut down by their tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
