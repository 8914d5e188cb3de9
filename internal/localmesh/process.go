package localmesh

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// child is one process this run started, in its own process group so a
// stop reaches whatever it forked too.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once reaped
	err  error         // Wait's result, set before done closes
}

// startChild starts argv with env. Output goes to out. onExit runs on the
// waiter goroutine after the child was reaped.
func startChild(name string, argv, env []string, dir string, out io.Writer, onExit func(*child)) (*child, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	// Setpgid: stop signals the whole group. Pdeathsig: if this process
	// dies without cleaning up (SIGKILL), the kernel still ends the child,
	// so a second `up` does not find the ports taken.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A grandchild holding the output pipe must not keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
		if onExit != nil {
			onExit(c)
		}
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group, then SIGKILL after
// grace, and waits until the child is reaped.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	pgid := c.pid() // Setpgid made the child its group's leader
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.done
	}
	// Anything the child left in its group dies with it (ESRCH: nothing).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// prefixWriter writes each complete line to out with a prefix, under a
// shared lock so lines of different children never interleave.
type prefixWriter struct {
	mu     *sync.Mutex
	out    io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := p.buf[:i+1]
		if _, err := fmt.Fprintf(p.out, "%s%s", p.prefix, line); err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) > 64<<10 { // a child writing without newlines
		fmt.Fprintf(p.out, "%s%s\n", p.prefix, p.buf)
		p.buf = p.buf[:0]
	}
	return len(b), nil
}
