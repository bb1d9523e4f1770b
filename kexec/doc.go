// Package kexec loads a kernel and initrd into the running kernel and
// boots them: kexec_file_load first, kexec_load (u-root's pure-Go loader)
// as a fallback, and a detached reboot so the SSH session that asked can
// end cleanly. Every refusal becomes an Error that names the cause
// (lockdown, Secure Boot, kexec_load_disabled, no kexec in the kernel,
// missing privilege, rejected signature) and what to do about it.
//
// It also holds the agent verbs kexec-preflight, kexec-prepare and
// kexec-exec, which tie package initramfs (the image) to the load.
package kexec
