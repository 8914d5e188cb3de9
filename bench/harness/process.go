package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Child is one process the harness started and will end by its PID.
type Child struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // file holding the child's stdout and stderr
	// done is closed when the process has been waited for; err is Wait's
	// result, written before the close. A closed channel (rather than a
	// value to receive) lets Exited and Stop be called any number of times.
	done chan struct{}
	err  error
}

// StartPinned runs argv on the given CPU list through taskset (which execs
// argv, so the PID is the program's own) with output to dir/<name>.log.
// With no cores the program runs unpinned.
func StartPinned(dir, name, cores string, argv ...string) (*Child, error) {
	if cores != "" {
		argv = append([]string{"taskset", "-c", cores}, argv...)
	}
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	// Die with the harness: an interrupted run must not leave proxies bound
	// to ports behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, argv[0], err)
	}
	c := &Child{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

// PID is the child's process id.
func (c *Child) PID() int { return c.Cmd.Process.Pid }

// Exited reports whether the child has already ended, and how.
func (c *Child) Exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// Stop ends the child by its PID: SIGTERM, then SIGKILL after grace.
func (c *Child) Stop(grace time.Duration) {
	if exited, _ := c.Exited(); exited {
		return
	}
	_ = c.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.Cmd.Process.Kill()
		<-c.done
	}
}

// Tail is the last bytes of the child's log, for error messages.
func (c *Child) Tail() string {
	b, err := os.ReadFile(c.Log)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// WaitHTTP polls url until it answers 200, the child dies, or timeout.
func WaitHTTP(ctx context.Context, url string, timeout time.Duration, children ...*Child) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		for _, c := range children {
			if exited, err := c.Exited(); exited {
				return fmt.Errorf("%s exited (%v) before %s answered; log %s:\n%s", c.Name, err, url, c.Log, c.Tail())
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within %v: %v", url, timeout, last)
}

// WaitTCP polls addr until it accepts a connection, the child dies, or timeout.
func WaitTCP(ctx context.Context, addr string, timeout time.Duration, children ...*Child) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		for _, c := range children {
			if exited, err := c.Exited(); exited {
				return fmt.Errorf("%s exited (%v) before %s listened; log %s:\n%s", c.Name, err, addr, c.Log, c.Tail())
			}
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not accept within %v: %v", addr, timeout, last)
}
