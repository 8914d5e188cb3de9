package kubetest

import "syscall"

// sysProcAttr makes the kernel kill the child if the test binary dies, so an
// interrupted `go test` leaves no apiserver or etcd behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
