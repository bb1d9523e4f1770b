// Package rescue is the in-RAM rescue system: what runs after kexec as
// u-root's uinit (`/nivis/nivis agent rescue-init`). It mounts what init did
// not, feeds the kernel entropy, loads modules for the present hardware,
// restores the host's network from the carry-over, serves SSH with the
// host's original keys to the carried authorized keys, and reboots into the
// old system when nobody connects in time. It never returns.
//
// The pieces are split so that each can be tested without a VM: the module
// index and alias matching, the network plan (a pure function from the
// carried state and the present links to typed operations), the SSH server
// (in-process on 127.0.0.1) and the watchdog build on every OS; the boot
// sequence and everything that touches the kernel are Linux only.
package rescue
