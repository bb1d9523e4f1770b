// Package install installs a system into a mounted target root: it reads a
// system source (a rootfs tarball, plain or compressed, an OCI image, or a
// raw disk image) as a stream, extracts it without letting any entry land
// outside the root, finalizes the installed system (fstab, hostname,
// machine-id, keys, network configuration) and installs its bootloader in a
// chroot.
//
// The agent side (Linux) registers the verbs install-fetch, install-finalize,
// install-bootloader and install-secrets with package agent, and serves the
// streaming verb install-extract through ServeStream, whose stdin is the data
// itself (zstd on the wire) rather than a JSON request. The client side
// (portable) opens sources and images and pushes them with Push.
package install
