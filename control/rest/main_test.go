package rest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: every
// stream, reader and reconnect loop here must end with its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
