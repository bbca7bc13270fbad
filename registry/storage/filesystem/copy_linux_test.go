package filesystem

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/unireg/unireg/registry/internal/directio"
)

// A large object does not pass through the page cache: after the copy, the
// pages of its whole buffers are not resident (mincore), where a buffered
// write would leave all of them cached and dirty.
func TestCopyToFileBypassesThePageCache(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if d := directio.Open(f); d == nil {
		t.Skipf("the filesystem of %s refuses O_DIRECT", p)
	} else {
		d.Close()
	}
	const size = 8 * copyBufferSize
	if n, err := copyToFile(f, 0, bytes.NewReader(bytes.Repeat([]byte{7}, size))); err != nil || n != size {
		t.Fatalf("copy = %d, %v", n, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (size+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	if resident > len(vec)/8 {
		t.Fatalf("%d of %d pages are in the page cache after an 8 MiB copy; want the direct writes to bypass it", resident, len(vec))
	}
}
