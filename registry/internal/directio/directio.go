// Package directio writes files around the page cache (O_DIRECT on Linux).
// On the machines unireg is measured on, the page cache copy of a fresh
// write costs more CPU than hashing it (docs/performance.md), so large
// streams are written directly: whole aligned buffers at aligned offsets.
// Durability is unchanged: the caller still syncs the file (the direct
// writes' metadata and the disk's cache need it).
package directio

import "unsafe"

// Align is the alignment O_DIRECT asks of file offsets, buffer addresses
// and lengths: 4 KiB covers every logical block size in use.
const Align = 4096

// AlignedBuffer returns size bytes whose address is a multiple of Align
// (Go's heap does not move objects, so it stays aligned).
func AlignedBuffer(size int) []byte {
	b := make([]byte, size+Align)
	skip := (Align - int(uintptr(unsafe.Pointer(&b[0]))%Align)) % Align
	return b[skip : skip+size : skip+size]
}

// Aligned reports whether b at off can be written directly.
func Aligned(b []byte, off int64) bool {
	return len(b)%Align == 0 && off%Align == 0 && len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%Align == 0
}
