//go:build unix

package loopback

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestReserveAcrossProcesses: a port FreePorts handed to another process
// is not handed out here while that process lives (its child may not have
// bound it yet), and is again once the process is gone; within one
// process a port is handed out once.
func TestReserveAcrossProcesses(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestReserveChild$")
	cmd.Env = append(os.Environ(), "LOOPBACK_RESERVE_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck // the normal end is the Wait below
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	p, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "port "))
	if err != nil {
		t.Fatalf("child printed %q", line)
	}

	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"held by the other process", func() {}, false},
		{"released when it exits", func() {
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child: %v", err)
			}
		}, true},
		{"held by this process now", func() {}, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do()
			if got := reserve(p); got != st.want {
				t.Fatalf("reserve(%d) = %v, want %v", p, got, st.want)
			}
		})
	}
}

// TestReserveChild is the other process of TestReserveAcrossProcesses: it
// takes a port, says which, and holds it until its stdin closes.
func TestReserveChild(t *testing.T) {
	if os.Getenv("LOOPBACK_RESERVE_CHILD") != "1" {
		t.Skip("run by TestReserveAcrossProcesses")
	}
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("port %d\n", ports[0])
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}
