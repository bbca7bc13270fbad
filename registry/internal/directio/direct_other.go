//go:build !linux

package directio

import "os"

// Open is nil where O_DIRECT does not exist: every write is buffered.
func Open(*os.File) *os.File { return nil }

// Refused is false: there are no direct writes to refuse.
func Refused(error) bool { return false }
