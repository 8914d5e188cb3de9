package kubetest

import "syscall"

// sysProcAttr makes the kernel kill the child if the test binary dies, so an
// interrupted `go test` leaves no apiserver or etcd behind. Strictly the
// signal follows the OS thread that started the child; the Go runtime only
// ends threads whose goroutine exits while locked to them, which nothing in
// a test binary's start path does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
