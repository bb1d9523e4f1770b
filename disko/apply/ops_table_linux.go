package apply

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/nivis/nivis/disko"
)

// tableCommands runs the hybrid MBR and parted commands on the disk.
func (x *executor) tableCommands(op *disko.Op) (string, error) {
	node, err := x.dev(op)
	if err != nil {
		return "", err
	}
	for _, c := range op.Commands {
		argv := make([]string, len(c))
		for i, a := range c {
			if a == op.Device {
				a = node
			}
			argv[i] = a
		}
		if err := x.run(argv, nil, nil); err != nil {
			return "", err
		}
	}
	return "", nil
}

// gpt writes the partition table: partitions that exist are kept (their
// name, type and attributes updated if they differ), missing ones are
// placed like sgdisk would. Then the kernel is told with BLKPG.
func (x *executor) gpt(op *disko.Op) (string, error) {
	node, err := x.dev(op)
	if err != nil {
		return "", err
	}
	f, size, ss, err := openBlock(node, os.O_RDWR)
	if err != nil {
		return "", err
	}
	defer f.Close()
	geo, err := disko.NewGeometry(size, ss)
	if err != nil {
		return "", fmt.Errorf("%s: %w", node, err)
	}
	table, err := gpt.Read(f, int(ss), int(ss))
	changed := false
	if err != nil {
		sig, perr := disko.Probe(f, size)
		if perr != nil {
			return "", perr
		}
		if sig != nil {
			return "", fmt.Errorf("%s holds %s, not a GPT: format does not overwrite it; use mode destroy,format,mount to wipe it first", node, sig)
		}
		table = &gpt.Table{LogicalSectorSize: int(ss), PhysicalSectorSize: int(ss), ProtectiveMBR: true}
		changed = true
	}
	byIndex := map[int]*gpt.Partition{}
	for _, p := range table.Partitions {
		byIndex[p.Index] = p
		geo.Use(p.Start, p.End)
	}
	var notes []string
	for _, s := range op.Partitions {
		if cur := byIndex[s.Index]; cur != nil {
			if cur.Name != s.Label || !strings.EqualFold(string(cur.Type), s.TypeGUID) || cur.Attributes != s.Attributes ||
				(s.UUID != "" && !strings.EqualFold(cur.GUID, s.UUID)) {
				notes = append(notes, fmt.Sprintf("partition %d: name %q type %s -> %q %s", s.Index, cur.Name, cur.Type, s.Label, s.TypeGUID))
				cur.Name, cur.Type, cur.Attributes = s.Label, gpt.Type(s.TypeGUID), s.Attributes
				if s.UUID != "" {
					cur.GUID = strings.ToUpper(s.UUID)
				}
				changed = true
			}
			continue
		}
		pl, err := geo.Place(s.Start, s.End, s.Alignment)
		if err != nil {
			return "", fmt.Errorf("partition %d (%s) does not fit on %s (%s): %w", s.Index, s.Key, node, disko.HumanBytes(size), err)
		}
		if s.EndSector != 0 && (pl.Start != s.StartSector || pl.End != s.EndSector) {
			return "", fmt.Errorf("partition %d (%s) would land on sectors %d..%d, the plan said %d..%d: the disk changed since the plan was made; plan again",
				s.Index, s.Key, pl.Start, pl.End, s.StartSector, s.EndSector)
		}
		p := &gpt.Partition{Index: s.Index, Start: pl.Start, End: pl.End, Type: gpt.Type(s.TypeGUID), Name: s.Label,
			GUID: strings.ToUpper(s.UUID), Attributes: s.Attributes}
		table.Partitions = append(table.Partitions, p)
		byIndex[s.Index] = p
		changed = true
	}
	for _, n := range notes {
		x.o.logf("%s", n)
	}
	sort.Slice(table.Partitions, func(i, j int) bool { return table.Partitions[i].Index < table.Partitions[j].Index })
	if changed {
		if err := table.Write(f, size); err != nil {
			return "", fmt.Errorf("write GPT to %s: %w", node, err)
		}
		if err := f.Sync(); err != nil {
			return "", err
		}
		x.o.logf("wrote GPT to %s: %d partitions", node, len(table.Partitions))
	}
	var want []kpart
	for _, p := range table.Partitions {
		want = append(want, kpart{Index: p.Index, Start: int64(p.Start) * ss, Length: int64(p.End-p.Start+1) * ss})
	}
	if err := syncKernelPartitions(f, want, x.o.logf); err != nil {
		return "", err
	}
	for _, s := range op.Partitions {
		pn, err := x.res.PartitionOf(x.ctx, node, s.Index)
		if err != nil {
			return "", fmt.Errorf("partition %d of %s did not appear: %w", s.Index, node, err)
		}
		if s.Device != "" {
			x.result.Devices[s.Device] = pn
		}
	}
	if !changed {
		return "the partition table already matches", nil
	}
	return "", nil
}
