//go:build unix

package loopback

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// reserveDir holds one lock file per port handed out. It is a fixed path,
// not os.TempDir(): every process on the machine must see the same files
// whatever its TMPDIR (tests set their own).
const reserveDir = "/tmp/causeway-loopback-ports"

// held keeps the locked files open: a flock lasts as long as its open file,
// and the kernel drops it when this process exits, however it exits.
var held struct {
	mu    sync.Mutex
	files []*os.File
}

// reserve claims port p for this process's lifetime against every other
// FreePorts caller on the machine (the test binaries of all packages run at
// once, each starting children on ports it picked). FreePorts' probe only
// sees ports already bound; a port picked by another process whose child
// has not bound it yet looks free, and two callers could otherwise hand out
// the same one. It reports false only when another process (or an earlier
// call in this one) holds p; when locking is not possible at all (no
// writable /tmp), it does not stand in the way.
func reserve(p int) bool {
	if err := os.MkdirAll(reserveDir, 0o777); err != nil {
		return true
	}
	// The directory is shared by every user's processes.
	_ = os.Chmod(reserveDir, 0o777|os.ModeSticky)
	f, err := os.OpenFile(filepath.Join(reserveDir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return !errors.Is(err, syscall.EWOULDBLOCK)
	}
	held.mu.Lock()
	held.files = append(held.files, f)
	held.mu.Unlock()
	return true
}
