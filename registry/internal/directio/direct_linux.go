package directio

import (
	"errors"
	"os"
	"syscall"
)

// Open opens the file f names again for writes that bypass the page cache.
// Nil when the filesystem refuses it (tmpfs on older kernels, some network
// filesystems): writes then stay buffered.
func Open(f *os.File) *os.File {
	d, err := os.OpenFile(f.Name(), os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return d
}

// Refused reports whether a direct write failed because of the alignment
// or the filesystem rather than the disk: the caller goes on buffered.
func Refused(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP)
}
