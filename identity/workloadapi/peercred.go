package workloadapi

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	return conn, PeerCredentials{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity},
		PID:            cred.Pid, UID: cred.Uid, GID: cred.Gid,
	}, nil
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
