// Package facts describes a Linux host as nivis needs to know it before it
// touches anything: OS, kernel and kexec ability, firmware, memory, disks and
// what is mounted from them, network, SSH and whether the host already runs
// the nivis rescue system.
//
// The types here are the JSON schema of the agent verb "facts" and are shared
// by client and agent, so this file builds on every OS. Field names are
// snake_case and stable: add fields, never rename them. The gatherer is Linux
// only (gather_linux.go) and fails soft: a part it cannot read becomes a line
// in Facts.Warnings instead of an error.
package facts

import "time"

// SchemaVersion is bumped only for incompatible changes of Facts.
const SchemaVersion = 1

// Facts is everything the agent knows about its host.
type Facts struct {
	SchemaVersion int       `json:"schema_version"`
	GatheredAt    time.Time `json:"gathered_at"`

	Hostname  string `json:"hostname"`
	MachineID string `json:"machine_id,omitempty"` // /etc/machine-id
	// BootID changes on every boot (and kexec): the client compares it to
	// know the host really came back.
	BootID string    `json:"boot_id"`
	OS     OSRelease `json:"os"`
	// Arch is GOARCH style (amd64, arm64); Machine is uname's (x86_64, aarch64).
	Arch    string `json:"arch"`
	Machine string `json:"machine"`
	CPUs    int    `json:"cpus"`

	Kernel         Kernel         `json:"kernel"`
	Boot           Boot           `json:"boot"`
	Kexec          Kexec          `json:"kexec"`
	Memory         Memory         `json:"memory"`
	Virtualization Virtualization `json:"virtualization"`
	Init           Init           `json:"init"`
	Privilege      Privilege      `json:"privilege"`
	// Tools maps tool name (mkfs.ext4, cryptsetup, ...) to its path on the
	// host; a tool that is missing is absent.
	Tools map[string]string `json:"tools"`

	// Disks are the block devices of /sys/block, except empty loop, ram
	// and zram devices.
	Disks   []Disk  `json:"disks"`
	Swaps   []Swap  `json:"swaps"`
	Network Network `json:"network"`
	SSH     SSH     `json:"ssh"`

	// NivisRescue is true when the host runs the nivis in-RAM rescue
	// system of this boot (marker /run/nivis/rescue.json).
	NivisRescue bool `json:"nivis_rescue"`
	// Rescue is the marker's content when present.
	Rescue *RescueMarker `json:"rescue,omitempty"`
	// IsInstaller is true on an installer image (os-release VARIANT_ID=installer).
	IsInstaller bool `json:"is_installer"`

	// Warnings name each part that could not be read, and why.
	Warnings []string `json:"warnings,omitempty"`

	// networkErr is the first failure reading Network (not sent: only the
	// gatherer's own process sees it).
	networkErr error
}

// NetworkError is the first failure reading the network when this snapshot
// was gathered in this process; nil when Network is complete (or the
// snapshot came over the wire). The carry-over refuses an incomplete one.
func (f *Facts) NetworkError() error { return f.networkErr }

// OSRelease is the part of /etc/os-release (or /usr/lib/os-release) nivis uses.
type OSRelease struct {
	ID              string `json:"id"`
	IDLike          string `json:"id_like,omitempty"`
	Name            string `json:"name,omitempty"`
	VersionID       string `json:"version_id,omitempty"`
	VersionCodename string `json:"version_codename,omitempty"`
	PrettyName      string `json:"pretty_name,omitempty"`
	VariantID       string `json:"variant_id,omitempty"`
}

// Kernel is the running kernel.
type Kernel struct {
	Release string `json:"release"`           // uname -r
	Version string `json:"version,omitempty"` // uname -v (build string)
	Cmdline string `json:"cmdline"`           // /proc/cmdline
	// BootImage is BOOT_IMAGE= from the command line, as the boot loader
	// passed it (relative to the boot partition, GRUB device prefix removed).
	BootImage string `json:"boot_image,omitempty"`
	// Image is the running kernel's image file found on disk, and whether
	// this agent could read it (kexec into the same kernel needs it).
	Image         string `json:"image,omitempty"`
	ImageReadable bool   `json:"image_readable"`
	// ConfigSource is where the kernel config was read from
	// (/proc/config.gz, /boot/config-<release>); empty when none was found.
	ConfigSource string `json:"config_source,omitempty"`
	// Config holds the interesting CONFIG_ symbols that are set ("y" or
	// "m"); a symbol that is absent is not set, if ConfigSource is known.
	Config map[string]string `json:"config,omitempty"`
}

// Boot is firmware and boot-time security state.
type Boot struct {
	// Firmware is "uefi" or "bios".
	Firmware string `json:"firmware"`
	// SecureBoot is "enabled", "disabled", "unsupported" (BIOS, or no
	// SecureBoot variable) or "unknown" (efivars not readable).
	SecureBoot string `json:"secure_boot"`
	// Lockdown is the kernel lockdown mode: "none", "integrity",
	// "confidentiality"; empty when the kernel does not expose it.
	Lockdown string `json:"lockdown,omitempty"`
}

// Kexec is what decides whether nivis can kexec into its rescue system.
type Kexec struct {
	// LoadDisabled is /proc/sys/kernel/kexec_load_disabled; null when the
	// file does not exist (a kernel without kexec support).
	LoadDisabled *bool `json:"load_disabled"`
	// KexecLoad and KexecFileLoad say whether the kernel has the kexec_load
	// (CONFIG_KEXEC) and kexec_file_load (CONFIG_KEXEC_FILE) syscalls; null
	// when the kernel config is unknown.
	KexecLoad     *bool `json:"kexec_load"`
	KexecFileLoad *bool `json:"kexec_file_load"`
	// SigForce is CONFIG_KEXEC_SIG_FORCE: only signed kernels load.
	SigForce *bool `json:"sig_force,omitempty"`
	// InitrdCompressions the kernel can unpack (CONFIG_RD_*): "gzip",
	// "xz", "zstd", "lz4", "bzip2", "lzma", "lzo"; null when unknown.
	InitrdCompressions []string `json:"initrd_compressions"`
}

// Memory is from /proc/meminfo, in bytes.
type Memory struct {
	TotalBytes     uint64 `json:"total_bytes"`
	AvailableBytes uint64 `json:"available_bytes"`
	SwapTotalBytes uint64 `json:"swap_total_bytes"`
	SwapFreeBytes  uint64 `json:"swap_free_bytes"`
}

// Virtualization says whether the host is a container or a VM.
type Virtualization struct {
	// Container is the container manager ("docker", "podman", "lxc",
	// "systemd-nspawn", "wsl", "openvz", or the value of container=), empty
	// on a real or virtual machine. nivis cannot take over a container.
	Container   string `json:"container,omitempty"`
	IsContainer bool   `json:"is_container"`
	// ContainerHints is the evidence for Container ("/.dockerenv exists").
	ContainerHints []string `json:"container_hints,omitempty"`
	// VM is the hypervisor as systemd-detect-virt names it ("kvm", "qemu",
	// "vmware", "microsoft", "xen", "oracle", "amazon", "google", ...), or
	// "vm-other" when the CPU says it is virtualized but not by what.
	VM          string `json:"vm,omitempty"`
	SysVendor   string `json:"sys_vendor,omitempty"`   // /sys/class/dmi/id/sys_vendor
	ProductName string `json:"product_name,omitempty"` // /sys/class/dmi/id/product_name
}

// Init is the host's PID 1.
type Init struct {
	Name string `json:"name"` // /proc/1/comm
	// SystemdVersion is the Manager's Version over D-Bus, when PID 1 is
	// systemd and the system bus answers.
	SystemdVersion string `json:"systemd_version,omitempty"`
}

// Privilege is who the agent runs as and how it could become root.
type Privilege struct {
	UID    int    `json:"uid"`
	User   string `json:"user,omitempty"`
	IsRoot bool   `json:"is_root"`
	Sudo   string `json:"sudo,omitempty"` // path of sudo, if installed
	Doas   string `json:"doas,omitempty"` // path of doas, if installed
}

// Disk is a whole block device (a /sys/block entry).
type Disk struct {
	Name string `json:"name"` // vda, nvme0n1, dm-0
	Path string `json:"path"` // /dev/vda
	// Kind is "disk" (backed by a device), "loop", "dm", "md", "zram",
	// "ram", "nbd" or "virtual".
	Kind       string `json:"kind"`
	DevNum     string `json:"devnum"` // major:minor
	SizeBytes  uint64 `json:"size_bytes"`
	Vendor     string `json:"vendor,omitempty"`
	Model      string `json:"model,omitempty"`
	Serial     string `json:"serial,omitempty"`
	WWID       string `json:"wwid,omitempty"`
	Rotational bool   `json:"rotational"`
	Removable  bool   `json:"removable"`
	ReadOnly   bool   `json:"read_only"`
	// ByID are the /dev/disk/by-id links that point at this disk.
	ByID []string `json:"by_id,omitempty"`
	// Slaves are the devices a dm or md device is built on.
	Slaves     []string    `json:"slaves,omitempty"`
	Partitions []Partition `json:"partitions,omitempty"`
	Usage
}

// Partition is a partition of a Disk.
type Partition struct {
	Name       string   `json:"name"` // vda1
	Path       string   `json:"path"` // /dev/vda1
	Number     int      `json:"number"`
	DevNum     string   `json:"devnum"`
	StartBytes uint64   `json:"start_bytes"`
	SizeBytes  uint64   `json:"size_bytes"`
	Label      string   `json:"label,omitempty"` // GPT partition name (PARTNAME)
	ByID       []string `json:"by_id,omitempty"`
	Usage
}

// Usage is what a disk or partition is used for right now. Mounts and swap
// reached through a holder (LVM, LUKS, md) count, with Via naming it.
type Usage struct {
	Mounts []Mount `json:"mounts,omitempty"`
	// Holders are devices built directly on this one (dm-0, md127).
	Holders []string `json:"holders,omitempty"`
	// Swap is true when this device (or a holder on it) is active swap.
	Swap bool `json:"swap,omitempty"`
	// HoldsRoot is true when / is mounted from this device, from one of its
	// partitions or from a holder on it.
	HoldsRoot bool `json:"holds_root"`
}

// Mount is one line of /proc/self/mountinfo that comes from a device.
type Mount struct {
	Mountpoint string `json:"mountpoint"`
	FSType     string `json:"fstype"`
	Source     string `json:"source"`
	Options    string `json:"options,omitempty"`
	// Via is the holder chain the mount goes through ("dm-0"), empty when
	// the filesystem sits directly on the device.
	Via string `json:"via,omitempty"`
}

// Swap is one line of /proc/swaps.
type Swap struct {
	Path      string `json:"path"`
	Type      string `json:"type"` // "partition" or "file"
	SizeBytes uint64 `json:"size_bytes"`
	UsedBytes uint64 `json:"used_bytes"`
	Priority  int    `json:"priority"`
}

// Network is links, addresses, routes of the main table, and DNS.
type Network struct {
	Interfaces []Interface `json:"interfaces"`
	Routes     []Route     `json:"routes"`
	DNS        DNS         `json:"dns"`
}

// Interface is one network link.
type Interface struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	MAC   string `json:"mac,omitempty"`
	// PermanentMAC is the burnt-in MAC when it differs (bond slaves).
	PermanentMAC string `json:"permanent_mac,omitempty"`
	MTU          int    `json:"mtu"`
	// Flags are net.Flags words: "up", "broadcast", "loopback", ...
	Flags     []string `json:"flags"`
	OperState string   `json:"oper_state"` // "up", "down", "unknown", ...
	// Kind is netlink's link type: "device", "bridge", "bond", "vlan",
	// "veth", "dummy", ...
	Kind     string `json:"kind"`
	Driver   string `json:"driver,omitempty"`    // kernel driver of the device (virtio_net)
	Master   string `json:"master,omitempty"`    // bond or bridge this link is enslaved to
	Parent   string `json:"parent,omitempty"`    // a vlan's underlying link
	VLANID   int    `json:"vlan_id,omitempty"`   // a vlan's id
	BondMode string `json:"bond_mode,omitempty"` // a bond's mode (active-backup, 802.3ad, ...)
	// Slaves are the links enslaved to this bond or bridge.
	Slaves    []string  `json:"slaves,omitempty"`
	Addresses []Address `json:"addresses"`
}

// Address is an IP address on an interface.
type Address struct {
	CIDR   string `json:"cidr"`   // "192.0.2.10/24"
	Family int    `json:"family"` // 4 or 6
	Scope  string `json:"scope"`  // "global", "link", "host", ...
	// Dynamic is true for DHCP or SLAAC addresses (IFA_F_PERMANENT absent).
	Dynamic bool `json:"dynamic"`
	// Lifetimes in seconds; -1 is forever.
	PreferredLifetime int64 `json:"preferred_lifetime"`
	ValidLifetime     int64 `json:"valid_lifetime"`
}

// Route is a route of the main table.
type Route struct {
	Family  int    `json:"family"` // 4 or 6
	Dst     string `json:"dst"`    // CIDR, or "default"
	Default bool   `json:"default"`
	Gateway string `json:"gateway,omitempty"`
	Dev     string `json:"dev,omitempty"`
	OnLink  bool   `json:"onlink,omitempty"`
	Metric  int    `json:"metric,omitempty"`
	Src     string `json:"src,omitempty"`
	Proto   string `json:"proto,omitempty"` // "kernel", "boot", "static", "dhcp", "ra", ...
	Scope   string `json:"scope,omitempty"`
	Table   int    `json:"table"`
	// Type is set when the route is not unicast ("blackhole", "unreachable").
	Type     string    `json:"type,omitempty"`
	Nexthops []Nexthop `json:"nexthops,omitempty"` // multipath routes
}

// Nexthop is one path of a multipath route.
type Nexthop struct {
	Gateway string `json:"gateway,omitempty"`
	Dev     string `json:"dev,omitempty"`
	OnLink  bool   `json:"onlink,omitempty"`
	Weight  int    `json:"weight,omitempty"`
}

// DNS is the resolver configuration.
type DNS struct {
	// Nameservers and Search are what a resolver on this host really uses:
	// systemd-resolved's upstream servers when /etc/resolv.conf only names
	// its local stub.
	Nameservers []string     `json:"nameservers"`
	Search      []string     `json:"search"`
	Sources     []ResolvConf `json:"sources,omitempty"`
}

// ResolvConf is one resolv.conf file as read.
type ResolvConf struct {
	Path        string   `json:"path"`
	Target      string   `json:"target,omitempty"` // where the path's symlink points
	Nameservers []string `json:"nameservers"`
	Search      []string `json:"search,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// SSH is the SSH server's configuration and state.
type SSH struct {
	// Ports is the best knowledge of the ports sshd serves: those a
	// process named sshd listens on, else the configured ones.
	Ports []int `json:"ports"`
	// ConfigPorts are the Port lines of sshd_config and its Includes (22
	// when there is none); ListenAddresses its ListenAddress lines.
	ConfigPorts     []int    `json:"config_ports"`
	ListenAddresses []string `json:"listen_addresses,omitempty"`
	// Listening are all listening TCP sockets of /proc/net/tcp and tcp6.
	Listening []Listener `json:"listening"`
	HostKeys  []HostKey  `json:"host_keys"`
}

// Listener is a listening TCP socket.
type Listener struct {
	Address string `json:"address"` // "0.0.0.0", "::"
	Port    int    `json:"port"`
	// Process is the comm of the process owning the socket, when known.
	Process string `json:"process,omitempty"`
}

// HostKey is one of the host's SSH public keys.
type HostKey struct {
	Path        string `json:"path"`
	Type        string `json:"type"`        // ssh-ed25519, ecdsa-sha2-nistp256, ...
	Fingerprint string `json:"fingerprint"` // SHA256:... as ssh-keygen -l prints it
	PublicKey   string `json:"public_key"`  // authorized_keys format, without comment
}

// RescueMarker is /run/nivis/rescue.json, written by the nivis rescue agent.
type RescueMarker struct {
	BootID string `json:"boot_id"`
	// Raw is the whole marker, for fields this version does not know.
	Raw map[string]any `json:"raw,omitempty"`
}
