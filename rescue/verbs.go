package rescue

import "github.com/nivis/nivis/internal/agent"

// The agent verbs of the rescue system:
//
//	rescue-init    u-root's uinit: runs Run and never returns.
//	rescue-reboot  asks the running rescue system to reboot (or power off)
//	               after a delay, so the client's SSH session ends cleanly
//	               first.
var (
	VerbInit   = agent.Verb[struct{}, struct{}]{Name: "rescue-init"}
	VerbReboot = agent.Verb[RebootRequest, RebootResult]{Name: "rescue-reboot"}
)

// RebootRequest is what the rescue-reboot verb asks of the running rescue
// system (through a file and SIGUSR1 to its pid in the marker).
type RebootRequest struct {
	// DelaySeconds lets the SSH session that asked end cleanly first.
	DelaySeconds int  `json:"delay_seconds"`
	PowerOff     bool `json:"poweroff"`
	// Kexec starts the kernel loaded with kexec (install-kexec-load)
	// instead of going through the firmware.
	Kexec bool `json:"kexec,omitempty"`
}

// RebootResult is the rescue-reboot verb's answer.
type RebootResult struct {
	PID          int  `json:"pid"`
	DelaySeconds int  `json:"delay_seconds"`
	PowerOff     bool `json:"poweroff"`
}
