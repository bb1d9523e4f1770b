package facts

import (
	"os"
	"reflect"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseOSRelease(t *testing.T) {
	for _, tc := range []struct {
		file string
		want OSRelease
	}{
		{"os-release/debian12", OSRelease{ID: "debian", Name: "Debian GNU/Linux", VersionID: "12", VersionCodename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"}},
		{"os-release/nixos-installer", OSRelease{ID: "nixos", Name: "NixOS", VersionID: "24.05", VersionCodename: "uakari", PrettyName: "NixOS 24.05 (Uakari)", VariantID: "installer"}},
		{"os-release/escaped", OSRelease{ID: "rocky", IDLike: "rhel centos fedora", VersionID: "9.3", PrettyName: `Say "hi" $HOME \ done`}},
	} {
		got := ParseOSRelease(readTestdata(t, tc.file))
		if got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.file, got, tc.want)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	m := memoryFrom(parseMeminfo(readTestdata(t, "meminfo")))
	want := Memory{TotalBytes: 2030588 * 1024, AvailableBytes: 1530720 * 1024, SwapTotalBytes: 1048572 * 1024, SwapFreeBytes: 1048060 * 1024}
	if m != want {
		t.Fatalf("got %+v, want %+v", m, want)
	}
	if n := parseMeminfo(readTestdata(t, "meminfo"))["HugePages_Total"]; n != 0 {
		t.Errorf("HugePages_Total (no unit) = %d, want 0", n)
	}
}

func TestParseMountinfo(t *testing.T) {
	ms, err := parseMountinfo(readTestdata(t, "mountinfo"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 6 {
		t.Fatalf("got %d entries, want 6", len(ms))
	}
	root := ms[1]
	if root.Mountpoint != "/" || root.DevNum != "253:0" || root.FSType != "ext4" || root.Source != "/dev/mapper/vg-root" || root.Parent != 1 || root.ID != 28 {
		t.Errorf("root entry: %+v", root)
	}
	if ms[4].Root != "/@home" || ms[4].FSType != "btrfs" || ms[4].SuperOpts != "rw,space_cache=v2,subvol=/@home" {
		t.Errorf("btrfs entry: %+v", ms[4])
	}
	if ms[5].Mountpoint != "/mnt/my disk" || ms[5].Source != `tmp\fs` {
		t.Errorf("escapes not decoded: mountpoint %q source %q", ms[5].Mountpoint, ms[5].Source)
	}
	if _, err := parseMountinfo([]byte("garbage line\n")); err == nil {
		t.Error("malformed mountinfo: no error")
	}
}

func TestParseResolvConf(t *testing.T) {
	stub := parseResolvConf(readTestdata(t, "resolv.conf-resolved-stub"))
	if !reflect.DeepEqual(stub.Nameservers, []string{"127.0.0.53"}) || !reflect.DeepEqual(stub.Search, []string{"example.com", "corp.example.com"}) || !reflect.DeepEqual(stub.Options, []string{"edns0", "trust-ad"}) {
		t.Errorf("stub: %+v", stub)
	}
	if !allStub(stub.Nameservers) {
		t.Error("127.0.0.53 not recognised as a local stub")
	}
	plain := parseResolvConf(readTestdata(t, "resolv.conf-plain"))
	if !reflect.DeepEqual(plain.Nameservers, []string{"192.0.2.53", "2001:db8::53"}) {
		t.Errorf("nameservers: %v", plain.Nameservers)
	}
	// The last of domain/search wins.
	if !reflect.DeepEqual(plain.Search, []string{"a.example", "b.example"}) {
		t.Errorf("search: %v", plain.Search)
	}
	if allStub(plain.Nameservers) {
		t.Error("real servers taken for a stub")
	}
}

func TestParseSSHDConfigInclude(t *testing.T) {
	c, warns, err := parseSSHDConfig(os.DirFS("testdata/sshd"), "etc/ssh/sshd_config")
	if err != nil {
		t.Fatal(err)
	}
	// 2200 from the drop-in, 22 and 2222 from the main file; not 1111
	// (not *.conf) and not 9999 (inside Match).
	if want := []int{22, 2200, 2222}; !reflect.DeepEqual(c.Ports, want) {
		t.Errorf("ports %v, want %v", c.Ports, want)
	}
	if want := []string{"0.0.0.0", "[::]:2201"}; !reflect.DeepEqual(c.ListenAddresses, want) {
		t.Errorf("listen addresses %v, want %v", c.ListenAddresses, want)
	}
	if len(warns) != 1 {
		t.Errorf("warnings %q, want one about the bad Port", warns)
	}
	if p := listenPortOf("[::]:2201"); p != 2201 {
		t.Errorf("listenPortOf = %d", p)
	}
	if p := listenPortOf("0.0.0.0"); p != 0 {
		t.Errorf("listenPortOf without port = %d", p)
	}

	// No config at all: sshd's default port, and the missing file is reported.
	c, _, err = parseSSHDConfig(os.DirFS(t.TempDir()), "etc/ssh/sshd_config")
	if err == nil || !reflect.DeepEqual(c.Ports, []int{22}) {
		t.Errorf("missing config: ports %v err %v", c.Ports, err)
	}
}

func TestParseProcNetTCP(t *testing.T) {
	v4, err := parseProcNetTCP(readTestdata(t, "proc-net-tcp"))
	if err != nil {
		t.Fatal(err)
	}
	want4 := []tcpSocket{
		{Address: "127.0.0.1", Port: 22, State: tcpListen, Inode: 1234},
		{Address: "0.0.0.0", Port: 2222, State: tcpListen, Inode: 1235},
		{Address: "192.0.2.2", Port: 44324, State: 1, Inode: 0},
	}
	if !reflect.DeepEqual(v4, want4) {
		t.Errorf("tcp:\n got %+v\nwant %+v", v4, want4)
	}
	v6, err := parseProcNetTCP(readTestdata(t, "proc-net-tcp6"))
	if err != nil {
		t.Fatal(err)
	}
	var got6 []string
	for _, s := range v6 {
		got6 = append(got6, net2str(s.Address, s.Port))
	}
	if want := []string{"[::]:22", "[::1]:8080", "[2001:db8::1]:22"}; !reflect.DeepEqual(got6, want) {
		t.Errorf("tcp6: got %v, want %v", got6, want)
	}
}

func TestParseKernelConfig(t *testing.T) {
	cfg := parseKernelConfig(readTestdata(t, "kernel-config"))
	if cfg["CONFIG_KEXEC"] != "y" || cfg["CONFIG_KEXEC_FILE"] != "y" || cfg["CONFIG_VIRTIO_NET"] != "m" {
		t.Errorf("config: %v", cfg)
	}
	if _, ok := cfg["CONFIG_KEXEC_SIG"]; ok {
		t.Error("a symbol that is not set was reported")
	}
	if _, ok := cfg["CONFIG_LOCALVERSION"]; ok {
		t.Error("an uninteresting symbol was reported")
	}
	// lz4 is "=m" (meaningless for a bool): not a compression the kernel has.
	if got, want := initrdCompressions(cfg), []string{"gzip", "xz", "zstd", "bzip2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("initrd compressions %v, want %v", got, want)
	}
}

func TestSmallParsers(t *testing.T) {
	for cmdline, want := range map[string]string{
		"BOOT_IMAGE=/vmlinuz-6.1.0-18-amd64 root=UUID=x ro quiet":         "/vmlinuz-6.1.0-18-amd64",
		"BOOT_IMAGE=(hd0,gpt2)/boot/vmlinuz-6.8.0 root=/dev/sda2":         "/boot/vmlinuz-6.8.0",
		"console=ttyS0 -- BOOT_IMAGE=/not/for/kernel":                     "",
		"initrd=\\EFI\\nixos\\initrd.efi init=/nix/store/x/init loglevel": "",
	} {
		if got := bootImageFromCmdline(cmdline); got != want {
			t.Errorf("bootImage(%q) = %q, want %q", cmdline, got, want)
		}
	}
	for in, want := range map[string]string{
		"[none] integrity confidentiality\n": "none",
		"none integrity [confidentiality]":   "confidentiality",
		"garbage":                            "",
	} {
		if got := parseLockdown([]byte(in)); got != want {
			t.Errorf("lockdown(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]int{"0-1\n": 2, "0": 1, "0-3,8-11": 8, "0,2,4-5": 4, "x": 0} {
		if got := parseCPUList(in); got != want {
			t.Errorf("cpulist(%q) = %d, want %d", in, got, want)
		}
	}
	sw := parseSwaps(readTestdata(t, "swaps"))
	want := []Swap{
		{Path: "/dev/dm-1", Type: "partition", SizeBytes: 1048572 * 1024, UsedBytes: 512 * 1024, Priority: -2},
		{Path: "/swap file", Type: "file", SizeBytes: 524284 * 1024, Priority: -3},
	}
	if !reflect.DeepEqual(sw, want) {
		t.Errorf("swaps:\n got %+v\nwant %+v", sw, want)
	}
	if !cpuinfoHypervisor([]byte("flags\t\t: fpu vme hypervisor lahf_lm\n")) || cpuinfoHypervisor([]byte("flags\t\t: fpu vme\n")) {
		t.Error("cpuinfo hypervisor flag misread")
	}
}
