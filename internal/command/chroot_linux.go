package command

import "syscall"

func chrootAttr(root string) *syscall.SysProcAttr {
	if root == "" {
		return nil
	}
	return &syscall.SysProcAttr{Chroot: root}
}
