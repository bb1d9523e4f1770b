//go:build !linux

package disko

// kernelCanMount cannot be known off Linux; layouts only run on Linux.
func kernelCanMount(string) bool { return true }
