//go:build !linux

package command

import "syscall"

func chrootAttr(root string) *syscall.SysProcAttr { return nil }
