// Package proctest runs a command for a test and keeps its output lines, so
// the test can wait for a line, read what was printed and stop the command
// by its PID. The end-to-end tests of `causeway up` (cmd/causeway and
// internal/localmesh) drive the real binary with it.
//
// Goroutines: Start starts one that scans the output and one that waits
// for the process; both end when it exits. The test's cleanup interrupts
// the process if it still runs, kills it if that does not work, and logs
// its output when the test failed.
package proctest

import (
	"bufio"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a running command and the lines it has printed (stdout and
// stderr together).
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	cond  *sync.Cond
	lines []string
}

// Start runs name with args. At the test's end a process still running
// gets SIGINT, and SIGKILL if it has not exited within stopWithin.
func Start(t testing.TB, stopWithin time.Duration, name string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.cond.Broadcast()
			p.mu.Unlock()
		}
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(p.done)
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			// Interrupt first, so a failed test still leaves nothing
			// behind; kill only if that does not work.
			_ = cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-p.done:
			case <-time.After(stopWithin):
				_ = cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, strings.Join(p.Lines(), "\n"))
		}
	})
	return p
}

// Exited says whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Count is the number of lines printed so far.
func (p *Proc) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// Lines returns a copy of the lines printed so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

// WaitLine waits for a line at index from or later matching re and returns
// its submatches and the index after it; the test fails if none comes
// within timeout or the process exits first.
func (p *Proc) WaitLine(t testing.TB, from int, re *regexp.Regexp, timeout time.Duration) ([]string, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := from; ; {
		for ; i < len(p.lines); i++ {
			if m := re.FindStringSubmatch(p.lines[i]); m != nil {
				return m, i + 1
			}
		}
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("no line matching %q within %s (exited: %v)", re, timeout, p.Exited())
		}
		p.cond.Wait()
	}
}

// All returns every submatch of re in the lines so far.
func (p *Proc) All(re *regexp.Regexp) [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]string
	for _, l := range p.lines {
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, m)
		}
	}
	return out
}
