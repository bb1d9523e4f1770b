package install

import "github.com/nivis/nivis/internal/agent"

// VerbKexecBoot loads the installed system's kernel for `--kexec-boot`.
var VerbKexecBoot = agent.Verb[KexecBootRequest, KexecBootResult]{Name: "install-kexec-load"}

// KexecBootRequest asks the agent to load the newest kernel installed
// under Root (its /boot/vmlinuz-* and initrd) as the next kexec image.
type KexecBootRequest struct {
	Root string `json:"root"`
	// Cmdline is appended to the command line nivis builds (root by UUID,
	// the console= arguments the host booted with).
	Cmdline string `json:"cmdline,omitempty"`
}

// KexecBootResult says what was loaded.
type KexecBootResult struct {
	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline"`
	Method  string `json:"method"`
}
