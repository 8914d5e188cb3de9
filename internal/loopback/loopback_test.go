package loopback

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: want 5 distinct ports", ports)
		}
		seen[p] = true
		// Released: each can be bound again.
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d not free after FreePorts: %v", p, err)
		}
		ln.Close()
	}
}

// TestFreePortsBelowEphemeral: the ports come from below the kernel's
// ephemeral range, where bind(":0") and outgoing connections never land.
func TestFreePortsBelowEphemeral(t *testing.T) {
	lo, hi := belowEphemeral()
	if hi-lo < 1000 {
		t.Skipf("ephemeral range starts at %d: too little room below it, FreePorts asks the kernel", hi)
	}
	ports, err := FreePorts(50)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if p < lo || p >= hi {
			t.Fatalf("port %d outside [%d, %d)", p, lo, hi)
		}
	}
	// A port in use is never handed out.
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if free(ports[0]) {
		t.Fatalf("port %d reported free while a listener holds it", ports[0])
	}
}
