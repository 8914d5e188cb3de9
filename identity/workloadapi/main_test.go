package workloadapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// stream goroutine must end when its client goes away or the server stops.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
