package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawIO reads and writes a plaintext TCP connection with raw read(2) and
// write(2) through its syscall.RawConn, waiting in the netpoller as net.Conn
// does when the socket is not ready (deadlines and Close work the same).
//
// Why: net.Conn enters every read and write as a blocking system call, so
// the runtime's monitor thread takes the processor away from one that has
// been in it a few tens of microseconds and wakes another thread to run the
// other goroutines. A write to a loopback socket runs the receiver's TCP
// stack too and often takes that long, so a busy proxy pinned to one core
// kept the monitor polling every 20 µs and switched threads thousands of
// times a second for nothing. On a nonblocking socket neither call can
// block; raw calls are invisible to the monitor, which then sleeps.
//
// One reader and one writer at a time (bufio's use): the read and write
// state are separate, and the callbacks are bound once so a call does not
// allocate a closure.
type rawIO struct {
	rc syscall.RawConn

	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	readFn func(uintptr) bool

	wbuf    []byte
	wn      int
	werrno  syscall.Errno
	writeFn func(uintptr) bool
}

// newRawIO returns raw I/O for a *net.TCPConn, or c itself for any other
// connection (TLS and the like).
func newRawIO(c net.Conn) io.ReadWriter {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawIO{rc: rc}
	r.readFn, r.writeFn = r.doRead, r.doWrite
	return r
}

func (r *rawIO) doRead(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rbuf[0])), uintptr(len(r.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the netpoller, then call again
		case 0:
			r.rn, r.rerrno = int(n), 0
		default:
			r.rn, r.rerrno = 0, e
		}
		return true
	}
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rbuf = p
	err := r.rc.Read(r.readFn)
	r.rbuf = nil
	if err != nil {
		return 0, err
	}
	if r.rerrno != 0 {
		return 0, os.NewSyscallError("read", r.rerrno)
	}
	if r.rn == 0 {
		return 0, io.EOF
	}
	return r.rn, nil
}

func (r *rawIO) doWrite(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&r.wbuf[0])), uintptr(len(r.wbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			r.wn, r.werrno = int(n), 0
		default:
			r.wn, r.werrno = 0, e
		}
		return true
	}
}

func (r *rawIO) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		r.wbuf = p[written:]
		err := r.rc.Write(r.writeFn)
		r.wbuf = nil
		if err != nil {
			return written, err
		}
		if r.werrno != 0 {
			return written, os.NewSyscallError("write", r.werrno)
		}
		written += r.wn
	}
	return written, nil
}
