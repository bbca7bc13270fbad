//go:build !linux

package s3

import "syscall"

func dieWithParent() *syscall.SysProcAttr { return nil }
