package disko

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/nivis/nivis/internal/command"
)

// Render prints the plan for people: a tree per disk (what it is, what it
// holds now, what will be destroyed, the new layout), then every
// operation in order with its exact command.
func (p *Plan) Render(w io.Writer) {
	fmt.Fprintf(w, "mode %s, mountpoints under %s\n", p.Mode, p.Root)
	for _, d := range p.Disks {
		fmt.Fprintf(w, "\ndisk %s: %s", d.Key, d.Device)
		if d.Now != nil && d.Now.Resolved != "" && d.Now.Resolved != d.Device {
			fmt.Fprintf(w, " -> %s", d.Now.Resolved)
		}
		fmt.Fprintln(w)
		if n := d.Now; n != nil {
			if !n.Missing {
				var id []string
				if n.Model != "" {
					id = append(id, n.Model)
				}
				if n.Serial != "" {
					id = append(id, "serial "+n.Serial)
				}
				id = append(id, HumanBytes(n.Size))
				if n.SectorSize > 0 && n.SectorSize != 512 {
					id = append(id, fmt.Sprintf("%d-byte sectors", n.SectorSize))
				}
				fmt.Fprintf(w, "  %s\n", strings.Join(id, ", "))
			}
			if n.RootDisk {
				fmt.Fprintf(w, "  !! holds the running system's root filesystem\n")
			}
			fmt.Fprintf(w, "  now: %s\n", n.Describe())
			for _, pt := range n.Partitions {
				name := ""
				if pt.Name != "" {
					name = fmt.Sprintf(" %q", pt.Name)
				}
				fmt.Fprintf(w, "    %d %s%s %s: %s\n", pt.Index, pt.Device, name, HumanBytes(int64(pt.End-pt.Start+1)*max(n.SectorSize, 1)), describePart(pt))
			}
			if len(n.Partitions) == 0 && (len(n.Mountpoints) > 0 || n.Swap) {
				fmt.Fprintf(w, "    in use: %s\n", strings.Join(n.InUse(), "; "))
			}
		}
		switch {
		case d.Destroy:
			fmt.Fprintf(w, "  DESTROY: everything on this disk is wiped\n")
		case d.Keep != "":
			fmt.Fprintf(w, "  kept: %s\n", d.Keep)
		}
		if d.Table != "" {
			fmt.Fprintf(w, "  new: %s\n", d.Table)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, pt := range d.Parts {
				where, size := "", ""
				if pt.EndSector != 0 {
					where = fmt.Sprintf("%d..%d", pt.StartSector, pt.EndSector)
					size = HumanBytes(pt.Bytes)
				}
				note := pt.Action
				if pt.Note != "" {
					note += " (" + pt.Note + ")"
				}
				fmt.Fprintf(tw, "    %d\t%s\t%s\t%s\t%s\t%s\t%s\n", pt.Index, pt.Key, pt.Type, where, size, pt.Holds, note)
			}
			tw.Flush()
		} else if d.Holds != "" {
			fmt.Fprintf(w, "  new: %s\n", d.Holds)
		}
	}
	if len(p.Other) > 0 {
		fmt.Fprintf(w, "\nother devices:\n")
		for _, o := range p.Other {
			fmt.Fprintf(w, "  %s\n", o)
		}
	}
	fmt.Fprintf(w, "\noperations:\n")
	if len(p.Ops) == 0 {
		fmt.Fprintf(w, "  (none)\n")
	}
	for i, op := range p.Ops {
		fmt.Fprintf(w, "  %2d. [%s] %s", i+1, op.Phase, op.Summary)
		if op.Skip != "" {
			fmt.Fprintf(w, " -- skipped now: %s", op.Skip)
		}
		fmt.Fprintln(w)
		if len(op.Argv) > 0 {
			fmt.Fprintf(w, "      $ %s\n", command.Quote(op.Argv))
		}
		for _, c := range op.Commands {
			fmt.Fprintf(w, "      $ %s\n", command.Quote(c))
		}
	}
}

// String renders the plan.
func (p *Plan) String() string {
	var b strings.Builder
	p.Render(&b)
	return b.String()
}

// Destroys lists the disks the plan wipes, for confirmation prompts.
func (p *Plan) Destroys() []DiskPlan {
	var out []DiskPlan
	for _, d := range p.Disks {
		if d.Destroy {
			out = append(out, d)
		}
	}
	return out
}
