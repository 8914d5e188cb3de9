package workloadapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
)

// PeerCredentials is the credentials.AuthInfo attached to every connection on
// the socket: the peer process's ids as the kernel recorded them at connect().
type PeerCredentials struct {
	credentials.CommonAuthInfo
	PID int32
	UID uint32
	GID uint32

	proc *pidHandle // nil when the kernel has no pidfd_open
}

// Alive reports whether the process that connected is still running. It is
// checked after anything is read from /proc/<pid>: if it is still alive then,
// the pid was not recycled by another process in between (the attack SPIRE's
// peertracker guards against). Without a pidfd it cannot tell and says true.
func (p PeerCredentials) Alive() bool {
	if p.proc == nil {
		return true
	}
	return p.proc.alive()
}

// pidHandle holds a pidfd for the connection's lifetime. The mutex keeps a
// late alive() from signalling an fd number reused after close.
type pidHandle struct {
	mu     sync.Mutex
	fd     int
	closed bool
}

func (h *pidHandle) alive() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.closed && unix.PidfdSendSignal(h.fd, 0, nil, 0) == nil
}

func (h *pidHandle) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		unix.Close(h.fd)
		h.closed = true
	}
}

// pidConn closes the pidfd with the connection.
type pidConn struct {
	net.Conn
	proc *pidHandle
}

func (c *pidConn) Close() error {
	c.proc.close()
	return c.Conn.Close()
}

// AuthType implements credentials.AuthInfo.
func (PeerCredentials) AuthType() string { return "unix-peercred" }

// peerCredTransport is a grpc TransportCredentials that does no handshake on
// the wire (the client uses insecure credentials, as go-spiffe's does) and
// only reads SO_PEERCRED. A connection it cannot read credentials from is
// refused, so the server can never serve an unattested TCP peer.
type peerCredTransport struct{}

func (peerCredTransport) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, nil, fmt.Errorf("workload API: connection %T has no file descriptor for peer credentials", conn)
	}
	if _, ok := conn.LocalAddr().(*net.UnixAddr); !ok {
		return nil, nil, fmt.Errorf("workload API: peer credentials need a unix socket, got %s", conn.LocalAddr().Network())
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, nil, fmt.Errorf("workload API: peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, nil, fmt.Errorf("workload API: peer credentials: %w", err)
	}
	if credErr != nil {
		return nil, nil, fmt.Errorf("workload API: SO_PEERCRED: %w", credErr)
	}
	pc := PeerCredentials{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity},
		PID:            cred.Pid, UID: cred.Uid, GID: cred.Gid,
	}
	// Pin the process now, while it is certainly the peer.
	if fd, err := unix.PidfdOpen(int(cred.Pid), 0); err == nil {
		pc.proc = &pidHandle{fd: fd}
		return &pidConn{Conn: conn, proc: pc.proc}, pc, nil
	}
	return conn, pc, nil
}

func (peerCredTransport) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("workload API: peer-credential transport is server-only")
}

func (peerCredTransport) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "unix-peercred"}
}

func (t peerCredTransport) Clone() credentials.TransportCredentials { return t }

// OverrideServerName is a client-side setting; this transport is server-only.
func (peerCredTransport) OverrideServerName(string) error { return nil }
