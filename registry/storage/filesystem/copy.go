package filesystem

import (
	"errors"
	"io"
	"os"
	"sync"

	"github.com/unireg/unireg/registry/internal/directio"
)

// Objects stream into their files through copyToFile. Large ones bypass the
// page cache (package directio): once a body has filled one buffer, whole
// aligned buffers are written with O_DIRECT, and only the unaligned head and
// the last partial buffer go through the page cache. On the machines unireg
// is measured on the page cache copy of a fresh write costs more CPU than
// hashing it, so a buffered blob push runs at a third of what the disk takes
// (docs/performance.md); direct writes also leave the page cache to what is
// read. Durability is unchanged: the caller still syncs the file before it
// answers.

const (
	// directAlign is the alignment of direct writes.
	directAlign = directio.Align
	// copyBufferSize is large enough that a blob streams with few syscalls.
	copyBufferSize = 1 << 20
)

var copyBuffers = sync.Pool{New: func() any { b := directio.AlignedBuffer(copyBufferSize); return &b }}

// copyToFile writes r into f from offset and returns how many bytes it
// wrote. f must be open for writing; the caller syncs it.
func copyToFile(f *os.File, offset int64, r io.Reader) (int64, error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	pos := offset
	var direct *os.File
	defer func() {
		if direct != nil {
			direct.Close()
		}
	}()
	// The head up to the first aligned offset goes first, buffered, so every
	// full buffer after it starts aligned in the file as in memory.
	fill := int((directAlign - offset%directAlign) % directAlign)
	if fill == 0 {
		fill = len(buf)
	}
	tried := false
	for {
		m, err := io.ReadFull(r, buf[:fill])
		if m > 0 {
			if m == len(buf) && !tried {
				tried = true
				direct = directio.Open(f)
			}
			if werr := writeAt(f, &direct, buf[:m], pos); werr != nil {
				return pos - offset, werr
			}
			pos += int64(m)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return pos - offset, nil
		}
		if err != nil {
			return pos - offset, err
		}
		fill = len(buf)
	}
}

// writeAt writes b at off: directly when b is a whole aligned buffer and a
// direct handle is open, buffered otherwise. A direct write the filesystem
// refuses closes the handle and is done buffered, as all after it.
func writeAt(f *os.File, direct **os.File, b []byte, off int64) error {
	if *direct != nil && len(b) == copyBufferSize && off%directAlign == 0 {
		_, err := (*direct).WriteAt(b, off)
		if err == nil || !directio.Refused(err) {
			return err
		}
		(*direct).Close()
		*direct = nil
	}
	_, err := f.WriteAt(b, off)
	return err
}
