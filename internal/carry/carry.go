// Package carry is the data a host carries across the kexec into the
// in-RAM nivis agent: its network state, who may log in, its SSH identity
// and the nivis config. The pre-kexec agent writes it into an appended cpio;
// the in-RAM agent reads it at boot. Both sides share these types so the
// format can only change in one place.
package carry

import (
	"encoding/json"
	"fmt"
	"os"
)

// Paths inside the initramfs.
const (
	// File is the JSON document described by State.
	File = "/nivis/carry.json"
	// HostKeyDir holds the host's original ssh_host_*_key files.
	HostKeyDir = "/nivis/hostkeys"
	// ConfigFile is the nivis config the client sent, if any.
	ConfigFile = "/nivis/config.yaml"
	// AgentPath is where the nivis binary itself lives in the image.
	AgentPath = "/nivis/nivis"
	// ModulesDir is where kernel modules are carried, laid out like
	// /lib/modules/<release> (modules.dep included), compressed as found.
	ModulesDir = "/lib/modules"
	// RescueMarker is written by the in-RAM agent once it runs; `facts`
	// reports nivis_rescue=true when it exists.
	RescueMarker = "/run/nivis/rescue.json"
)

// State is everything carried over, as JSON.
type State struct {
	Version   int    `json:"version"`
	Hostname  string `json:"hostname"`
	MachineID string `json:"machine_id"`
	// BootID is the boot_id before kexec: the client waits for a different one.
	BootID string `json:"boot_id"`
	// KernelRelease is the kernel we kexec into (modules are for it).
	KernelRelease string `json:"kernel_release"`
	// SSHPorts are the ports the rescue SSH server listens on (the
	// pre-kexec sshd's ports, or --post-kexec-ssh-port).
	SSHPorts []int `json:"ssh_ports"`
	// AuthorizedKeys are authorized_keys lines: root's, the login user's,
	// /etc/ssh/authorized_keys.d, plus the client's key.
	AuthorizedKeys []string `json:"authorized_keys"`
	// HostKeys lists the files under HostKeyDir (base names).
	HostKeys []string `json:"host_keys"`
	Network  Network  `json:"network"`
	// RescueTimeoutSeconds: reboot into the old system if no client
	// connects within this time (0 = never).
	RescueTimeoutSeconds int `json:"rescue_timeout_seconds"`
	// Modules to load early, in order (names, without suffix), before
	// coldplug: entropy sources first.
	EarlyModules []string `json:"early_modules"`
}

// Network is the captured network state.
type Network struct {
	Interfaces []Interface `json:"interfaces"`
	Routes     []Route     `json:"routes"`
	DNS        DNS         `json:"dns"`
}

// Interface is one link, matched after kexec by MAC (names can change).
type Interface struct {
	Name  string `json:"name"`
	MAC   string `json:"mac"`
	MTU   int    `json:"mtu"`
	Kind  string `json:"kind,omitempty"` // "", "bond", "vlan", "bridge"...
	Up    bool   `json:"up"`
	Addrs []Addr `json:"addrs"`
	// VLANID and Parent describe a vlan link; Slaves a bond or bridge.
	VLANID int      `json:"vlan_id,omitempty"`
	Parent string   `json:"parent,omitempty"`
	Slaves []string `json:"slaves,omitempty"`
}

// Addr is an address in CIDR form ("192.0.2.10/24", "2001:db8::1/64").
type Addr struct {
	CIDR string `json:"cidr"`
	// Dynamic is true for DHCP/SLAAC addresses (no IFA_F_PERMANENT): after
	// kexec we run DHCP and ask for this address again rather than set it.
	Dynamic bool `json:"dynamic"`
}

// Route is a route of the main table.
type Route struct {
	Family  int    `json:"family"` // 4 or 6
	Dst     string `json:"dst"`    // CIDR; "default" for the default route
	Gateway string `json:"gateway,omitempty"`
	Dev     string `json:"dev"` // interface name before kexec (mapped by MAC)
	OnLink  bool   `json:"onlink,omitempty"`
	Metric  int    `json:"metric,omitempty"`
	Src     string `json:"src,omitempty"`
	// Proto "dhcp"/"ra" routes are recreated by DHCP/RA, "static"/"boot" by us.
	Proto string `json:"proto,omitempty"`
}

// DNS is resolv.conf's content that matters.
type DNS struct {
	Nameservers []string `json:"nameservers"`
	Search      []string `json:"search"`
}

// Read loads State from path.
func Read(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("carry-over %s: %w", path, err)
	}
	return &s, nil
}
