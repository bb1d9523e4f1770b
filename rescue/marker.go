package rescue

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// Marker is the JSON document at carry.RescueMarker: written once the SSH
// server listens and rewritten when something changes (a late lease). The
// client and `facts` read it to know they talk to the rescue system and
// where it really is reachable.
type Marker struct {
	BootID    string    `json:"boot_id"`
	StartedAt time.Time `json:"started_at"`
	// PID is the rescue-init process; the rescue-reboot verb signals it.
	PID      int    `json:"pid"`
	Hostname string `json:"hostname"`
	// SSHPorts the server listens on (all addresses, IPv4 and IPv6).
	SSHPorts []int `json:"ssh_ports"`
	// HostKeys are the fingerprints served (SHA256:...); Ephemeral is true
	// when no carried host key could be used and a new one was made.
	HostKeys  []string `json:"host_keys"`
	Ephemeral bool     `json:"ephemeral_host_key,omitempty"`
	// Links are the links as configured now, with their addresses.
	Links []MarkerLink `json:"links"`
	// AddressChanges lists DHCP leases that differ from the old address:
	// the client must reconnect to New.
	AddressChanges []AddressChange `json:"address_changes,omitempty"`
	// Failures and Skipped are what did not work and what was left out.
	Failures []string `json:"failures,omitempty"`
	Skipped  []string `json:"skipped,omitempty"`
	// WatchdogDeadline is when the host reboots into its old system unless
	// a client logs in (zero: no watchdog, or disarmed).
	WatchdogDeadline time.Time `json:"watchdog_deadline,omitzero"`
}

// MarkerLink is one link in the rescue system.
type MarkerLink struct {
	Name    string   `json:"name"`
	OldName string   `json:"old_name,omitempty"`
	MAC     string   `json:"mac"`
	Up      bool     `json:"up"`
	Addrs   []string `json:"addrs"`
}

// AddressChange is a DHCP lease that is not the address the host had.
type AddressChange struct {
	Link string `json:"link"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// ReadMarker loads the marker at path.
func ReadMarker(path string) (*Marker, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// writeJSONAtomic writes v to path through a temporary file and a rename,
// so a reader never sees half a document.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
