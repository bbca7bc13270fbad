package filesystem

import (
	"errors"
	"os"
	"syscall"
)

// openDirect opens the file f names again for writes that bypass the page
// cache (O_DIRECT). Nil when the filesystem refuses it (tmpfs on older
// kernels, some network filesystems): the copy then stays buffered.
func openDirect(f *os.File) *os.File {
	d, err := os.OpenFile(f.Name(), os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return d
}

// refusedDirect reports whether a direct write failed because of the
// alignment or the filesystem rather than the disk: the copy goes on
// buffered.
func refusedDirect(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP)
}
