package workloadapi

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPeerCredHandshake: a unix connection yields the peer's real ids; a TCP
// connection is refused, so no unattested peer ever reaches a handler.
func TestPeerCredHandshake(t *testing.T) {
	dir, err := os.MkdirTemp("", "cw-pc-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	tests := []struct {
		name    string
		network string
		addr    string
		wantErr bool
	}{
		{"unix socket", "unix", filepath.Join(dir, "s.sock"), false},
		{"tcp loopback", "tcp", "127.0.0.1:0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen(tt.network, tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				c, err := net.Dial(tt.network, l.Addr().String())
				if err == nil {
					defer c.Close()
					var b [1]byte
					c.Read(b[:]) // hold the connection open until the server closes it
				}
			}()
			conn, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, info, err := peerCredTransport{}.ServerHandshake(conn)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("handshake accepted a %s connection", tt.network)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pc := info.(PeerCredentials)
			if int(pc.UID) != os.Getuid() || int(pc.GID) != os.Getgid() || int(pc.PID) != os.Getpid() {
				t.Errorf("peer creds = uid %d gid %d pid %d, want %d %d %d", pc.UID, pc.GID, pc.PID, os.Getuid(), os.Getgid(), os.Getpid())
			}
		})
	}
}

func TestListenKeepsRegularFile(t *testing.T) {
	dir, err := os.MkdirTemp("", "cw-ls-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "api.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := Listen(path); err == nil {
		l.Close()
		t.Fatalf("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Errorf("file content changed to %q", b)
	}
	os.Remove(path)
	// A stale socket from a previous run is replaced.
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
}

// TestPeerCredHelperProcess is not a test: it is the child process of
// TestPeerCredAlive, connecting to the socket named in its environment.
func TestPeerCredHelperProcess(t *testing.T) {
	path := os.Getenv("CW_PEERCRED_SOCKET")
	if path == "" {
		return
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		os.Exit(2)
	}
	var b [1]byte
	c.Read(b[:]) // returns when the parent closes its end
	os.Exit(0)
}

// TestPeerCredAlive: the pidfd taken at connect says the peer is alive while
// it runs and not after it exits, which is what rules out pid reuse for
// /proc-based selectors.
func TestPeerCredAlive(t *testing.T) {
	dir, err := os.MkdirTemp("", "cw-pa-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeerCredHelperProcess$")
	cmd.Env = append(os.Environ(), "CW_PEERCRED_SOCKET="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	wrapped, info, err := peerCredTransport{}.ServerHandshake(conn)
	if err != nil {
		t.Fatal(err)
	}
	pc := info.(PeerCredentials)
	if int(pc.PID) != cmd.Process.Pid {
		t.Errorf("peer pid = %d, want the child's %d", pc.PID, cmd.Process.Pid)
	}
	if !pc.Alive() {
		t.Errorf("Alive() = false while the child runs")
	}
	conn.Close() // the child's Read returns and it exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if pc.proc == nil {
		t.Skip("kernel without pidfd_open: Alive cannot tell")
	}
	if pc.Alive() {
		t.Errorf("Alive() = true after the child exited")
	}
	wrapped.Close()
	if pc.Alive() {
		t.Errorf("Alive() = true after the connection closed")
	}
}
