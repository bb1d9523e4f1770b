package kexec

import (
	"github.com/nivis/nivis/initramfs"
	"github.com/nivis/nivis/internal/agent"
)

// Agent verbs this package serves (Linux side), and their JSON types,
// shared with the client.
var (
	VerbPreflight = agent.Verb[PrepareRequest, PreflightResult]{Name: "kexec-preflight"}
	VerbPrepare   = agent.Verb[PrepareRequest, PrepareResult]{Name: "kexec-prepare"}
	VerbExec      = agent.Verb[ExecRequest, ExecResult]{Name: "kexec-exec"}
)

// DefaultWorkDir is where the initrd is assembled on the target (tmpfs).
const DefaultWorkDir = "/run/nivis/kexec"

// PrepareRequest is kexec-prepare's (and kexec-preflight's) request.
type PrepareRequest struct {
	// Config is the nivis config to carry (YAML text), if any.
	Config string `json:"config,omitempty"`
	// AuthorizedKeys are added to root's and the login user's keys (the
	// client's own public key).
	AuthorizedKeys []string `json:"authorized_keys,omitempty"`
	// LoginUser is who the client logged in as (default $SUDO_USER).
	LoginUser string `json:"login_user,omitempty"`
	// SSHPort overrides the rescue SSH server's port (--post-kexec-ssh-port).
	SSHPort int `json:"ssh_port,omitempty"`
	// RescueTimeoutSeconds: reboot into the old system if no client
	// connects within this time; 0 means never.
	RescueTimeoutSeconds int `json:"rescue_timeout_seconds,omitempty"`
	// Features of the disk layout (ext4, xfs, btrfs, vfat, swap, luks,
	// lvm, mdadm...): they decide the modules and tools carried.
	Features []string `json:"features,omitempty"`
	// Tools and Modules add to what the features need.
	Tools   []string `json:"tools,omitempty"`
	Modules []string `json:"modules,omitempty"`
	// Kernel overrides the kernel image (default: the running release's).
	Kernel string `json:"kernel,omitempty"`
	// Initrd, when set, is loaded as is instead of the assembled rescue
	// image (`nivis kexec`); Append is then the whole command line
	// (default: the current one).
	Initrd string `json:"initrd,omitempty"`
	// Append is added to the rescue command line.
	Append string `json:"append,omitempty"`
	// Compression forces zstd, xz, gzip or none.
	Compression string `json:"compression,omitempty"`
	// WorkDir holds the initrd (default DefaultWorkDir, or a fallback
	// with enough room).
	WorkDir string `json:"work_dir,omitempty"`
	// KeepInitrd keeps the file after loading (it is deleted by default:
	// the kernel holds its own copy and tmpfs is RAM).
	KeepInitrd bool `json:"keep_initrd,omitempty"`
	// Force goes on despite failed preflight checks.
	Force bool `json:"force,omitempty"`
}

// Check is one preflight verdict.
type Check struct {
	Name string `json:"name"`
	// Status is "ok", "warn" (it may work) or "fail" (it will not).
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// PreflightResult is kexec-preflight's answer.
type PreflightResult struct {
	OK     bool      `json:"ok"`
	Checks []Check   `json:"checks"`
	Host   HostState `json:"host"`
	Kernel string    `json:"kernel,omitempty"`
	// MemTotal and MemAvailable in bytes, from /proc/meminfo.
	MemTotal     int64 `json:"mem_total"`
	MemAvailable int64 `json:"mem_available"`
	// Image is the planned rescue image (sizes estimated).
	Image *initramfs.Result `json:"image,omitempty"`
	// WorkDir is where kexec-prepare would assemble.
	WorkDir string `json:"work_dir,omitempty"`
}

// PrepareResult is kexec-prepare's answer: a kernel is loaded and
// kexec-exec will boot it.
type PrepareResult struct {
	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd"`
	Cmdline string `json:"cmdline"`
	// Method is kexec_file_load or kexec_load.
	Method string `json:"method"`
	// Image describes the assembled rescue initrd (nil for a custom one).
	Image *initramfs.Result `json:"image,omitempty"`
	// BootID before kexec: the client waits for a different one.
	BootID   string   `json:"boot_id"`
	SSHPorts []int    `json:"ssh_ports,omitempty"`
	HostKeys []string `json:"host_keys,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// AssembleSeconds is the time spent building the initrd.
	AssembleSeconds float64 `json:"assemble_seconds"`
}

// ExecRequest is kexec-exec's request (see Schedule).
type ExecRequest struct {
	// Delay before the reboot, e.g. "2s" (default 2s).
	Delay string `json:"delay,omitempty"`
	// Detached is set by Schedule for the child that does the reboot.
	Detached bool `json:"detached,omitempty"`
}

// ExecResult is kexec-exec's answer: the reboot is scheduled.
type ExecResult struct {
	PID   int    `json:"pid"`
	Delay string `json:"delay"`
}
