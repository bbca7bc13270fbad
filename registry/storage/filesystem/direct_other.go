//go:build !linux

package filesystem

import "os"

// openDirect is nil where O_DIRECT does not exist: every write is buffered.
func openDirect(*os.File) *os.File { return nil }

func refusedDirect(error) bool { return false }
