//go:build !linux

package disko

import "fmt"

// HostIDs needs Linux; elsewhere every lookup fails.
func HostIDs(devices map[string]string) IDs { return noIDs{} }

type noIDs struct{}

func (noIDs) UUID(dev string) (string, error) {
	return "", fmt.Errorf("%s: devices can only be read on Linux", dev)
}

func (noIDs) PartUUID(dev string) (string, error) {
	return "", fmt.Errorf("%s: devices can only be read on Linux", dev)
}
