package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/nivis/nivis/disko"
)

// HostIDs reads UUIDs from the devices themselves. devices maps layout
// names to nodes (an execution's Result.Devices); other names are
// resolved.
func HostIDs(devices map[string]string) disko.IDs { return hostIDs{devices: devices} }

type hostIDs struct{ devices map[string]string }

func (h hostIDs) node(dev string) (*blockDev, error) {
	r := &Resolver{Wait: 1}
	name := dev
	if n := h.devices[dev]; n != "" {
		name = n
	}
	return r.Find(context.Background(), name)
}

func (h hostIDs) UUID(dev string) (string, error) {
	b, err := h.node(dev)
	if err != nil {
		return "", err
	}
	sig, err := probeNode(b.Node())
	if err != nil {
		return "", err
	}
	if sig == nil || sig.UUID == "" {
		return "", fmt.Errorf("%s (%s) has no UUID: is it formatted?", dev, b.Node())
	}
	return sig.UUID, nil
}

func (h hostIDs) PartUUID(dev string) (string, error) {
	b, err := h.node(dev)
	if err != nil {
		return "", err
	}
	if b.Disk == "" {
		return "", fmt.Errorf("%s is not a partition", dev)
	}
	t := readGPT("/dev/" + b.Disk)
	if t == nil {
		return "", fmt.Errorf("%s: no GPT on /dev/%s", dev, b.Disk)
	}
	for _, p := range t.Partitions {
		if p.Index == b.Partition && p.Type != gpt.Unused {
			return strings.ToLower(p.GUID), nil
		}
	}
	return "", fmt.Errorf("%s: partition %d not in the GPT", dev, b.Partition)
}
