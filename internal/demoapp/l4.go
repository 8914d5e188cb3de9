package demoapp

import (
	"errors"
	"net"
)

// serveTCPEcho accepts until the listener closes; each connection echoes
// every byte back until the client half-closes.
func (s *Server) serveTCPEcho() {
	for {
		conn, err := s.tcpLn.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("demo-app tcp echo accept", "addr", s.TCPAddr, "err", err)
			}
			return
		}
		s.conns.add(conn)
		s.wg.Go(func() {
			defer func() {
				conn.Close()
				s.conns.remove(conn)
			}()
			_, _ = echo(conn, conn)
		})
	}
}

// serveUDPEcho sends every datagram back to its sender until the socket
// closes. 64 KiB holds the largest UDP payload.
func (s *Server) serveUDPEcho() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := s.udpConn.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("demo-app udp echo read", "addr", s.UDPAddr, "err", err)
			}
			return
		}
		if _, err := s.udpConn.WriteTo(buf[:n], from); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}
