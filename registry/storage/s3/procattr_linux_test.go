package s3

import "syscall"

// dieWithParent makes the kernel kill MinIO if the test binary dies first
// (a timeout, a crash), so no server outlives the tests.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
