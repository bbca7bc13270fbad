package filesystem

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// pieces hands out r in reads of odd sizes, as a network body does.
type pieces struct {
	r    io.Reader
	size int
}

func (p *pieces) Read(b []byte) (int, error) {
	if len(b) > p.size {
		b = b[:p.size]
	}
	return p.r.Read(b)
}

// The bytes land where they belong whatever the offset and the size: the
// unaligned head, whole direct buffers and the buffered tail together.
func TestCopyToFileAtEveryAlignment(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	offsets := []int64{0, 1, 511, directAlign - 1, directAlign, directAlign + 100, copyBufferSize + 3}
	sizes := []int{0, 1, directAlign - 1, directAlign, copyBufferSize - 1, copyBufferSize, copyBufferSize + 1, 3*copyBufferSize + 17}
	for _, dir := range []string{t.TempDir(), shmDir(t)} {
		for _, off := range offsets {
			for _, size := range sizes {
				prefix := bytes.Repeat([]byte{'x'}, int(off))
				body := make([]byte, size)
				for i := range body {
					body[i] = byte(rng.Uint32())
				}
				p := filepath.Join(dir, "f")
				if err := os.WriteFile(p, prefix, 0o644); err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				n, err := copyToFile(f, off, &pieces{r: bytes.NewReader(body), size: 7777})
				f.Close()
				if err != nil || n != int64(size) {
					t.Fatalf("%s offset %d size %d: wrote %d, %v", dir, off, size, n, err)
				}
				got, _ := os.ReadFile(p)
				if !bytes.Equal(got, append(prefix, body...)) {
					t.Fatalf("%s offset %d size %d: the file differs from what was written (%d bytes, want %d)", dir, off, size, len(got), int(off)+size)
				}
			}
		}
	}
}

// shmDir is a folder on tmpfs when there is one: a filesystem that may
// refuse O_DIRECT, where the copy must go on buffered.
func shmDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "unireg-copy-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// A reader's error stops the copy and is returned, with what was written.
func TestCopyToFileReturnsTheReadersError(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	broken := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(make([]byte, 2*copyBufferSize+5)), iotestErr{broken})
	n, err := copyToFile(f, 0, r)
	if !errors.Is(err, broken) || n != 2*copyBufferSize+5 {
		t.Fatalf("copy = %d, %v; want every byte read before the error written and %v", n, err, broken)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }
