//go:build linux

package rescue

import (
	"strings"
	"testing"
)

func TestMissingMounts(t *testing.T) {
	// What u-root v0.16's init leaves behind (libinit.Namespace).
	mountinfo := `1 0 0:2 / / rw - rootfs rootfs rw
20 1 0:5 / /dev rw,relatime - devtmpfs devtmpfs rw
21 1 0:20 / /proc rw,relatime - proc proc rw
22 1 0:21 / /tmp rw,relatime - tmpfs tmpfs rw
23 20 0:22 / /dev/pts rw,relatime - devpts devpts rw,mode=620,ptmxmode=666
24 20 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw
25 1 0:24 / /sys rw,relatime - sysfs sysfs rw
26 1 0:21 /etc /etc rw,relatime - tmpfs tmpfs rw
27 1 0:25 / /mnt/with\040space rw - ext4 /dev/vda1 rw
`
	mounted := parseMountinfo(strings.NewReader(mountinfo))
	if mounted["/mnt/with space"] != "ext4" {
		t.Errorf("escaped mount point: %v", mounted)
	}
	var got []string
	for _, m := range missingMounts(pseudoMounts, mounted) {
		got = append(got, m.Target)
	}
	if strings.Join(got, " ") != "/run" {
		t.Errorf("missing after u-root init: %v, want /run", got)
	}
	got = nil
	for _, m := range missingMounts(pseudoMounts, map[string]string{"/": "rootfs"}) {
		got = append(got, m.Target)
	}
	if strings.Join(got, " ") != "/proc /sys /dev /dev/pts /run /tmp" {
		t.Errorf("missing on a bare rootfs: %v", got)
	}
}
