package kexec

import "testing"

func TestCmdline(t *testing.T) {
	for _, tc := range []struct {
		name, current string
		extra         []string
		want          string
	}{
		{
			name:    "Debian VM with serial console",
			current: "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=2f3a ro console=tty0 console=ttyS0,115200n8 quiet",
			extra:   RescueParams,
			want:    "console=tty0 console=ttyS0,115200n8 nivis.rescue=1 rdinit=/init panic=10",
		},
		{
			name:    "quirks kept, init and root dropped",
			current: "root=/dev/vda1 init=/sbin/init earlyprintk=serial,ttyS0 ipv6.disable=1 intel_iommu=off modprobe.blacklist=nouveau net.ifnames=0",
			want:    "earlyprintk=serial,ttyS0 ipv6.disable=1 intel_iommu=off modprobe.blacklist=nouveau",
		},
		{
			name:    "quoted values stay whole, arguments after -- are init's",
			current: `console="ttyS0,115200" dyndbg="file a.c +p" -- console=tty1`,
			extra:   []string{"nivis.rescue=1", "foo=1 bar"},
			want:    `console="ttyS0,115200" nivis.rescue=1 foo=1 bar`,
		},
		{
			name:    "nothing to keep",
			current: "\n",
			want:    "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Cmdline(tc.current, tc.extra...); got != tc.want {
				t.Errorf("Cmdline(%q) =\n  %q\nwant\n  %q", tc.current, got, tc.want)
			}
		})
	}
}
