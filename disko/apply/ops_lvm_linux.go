package apply

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/command"
)

// vgCreate creates the VG on its PVs, or checks that the existing one
// is this layout's.
func (x *executor) vgCreate(op *disko.Op) (string, error) {
	o, err := x.withMembers(op)
	if err != nil {
		return "", err
	}
	if x.exists("lvm", "vgs", op.Name) {
		// It exists: it must be this layout's, on these very PVs.
		for _, n := range o.Members {
			if vg, err := x.pvVG(n); err != nil || vg != op.Name {
				return "", fmt.Errorf("a volume group %s exists already, but %s is not in it (it is in %q): an old or foreign VG has this name; remove it (lvm vgremove %s) or wipe its disks, then run again", op.Name, n, vg, op.Name)
			}
		}
		return "volume group exists", nil
	}
	return "", x.run(o.ToolArgv(""), nil, nil)
}

// lvCreate creates the LV unless it exists.
func (x *executor) lvCreate(op *disko.Op) (string, error) {
	if x.exists("lvm", "lvdisplay", op.VG+"/"+op.Name) {
		return "logical volume exists", nil
	}
	return "", x.run(op.ToolArgv(""), nil, nil)
}

// vgActivate activates the VG's LVs unless all are active.
func (x *executor) vgActivate(op *disko.Op) (string, error) {
	if x.lvsActive(op.VG, op.Members) == len(op.Members) && len(op.Members) > 0 {
		return "its logical volumes are active", nil
	}
	return "", x.run(op.ToolArgv(""), nil, nil)
}

// vgDeactivate deactivates the VG's LVs if any is active.
func (x *executor) vgDeactivate(op *disko.Op) (string, error) {
	if x.lvsActive(op.VG, op.Members) == 0 {
		return "its logical volumes are not active", nil
	}
	return "", x.run(op.ToolArgv(""), nil, nil)
}

// pvVG asks LVM which VG the PV on node belongs to ("" for none), in
// JSON: the one place the agent reads a tool's report, never its prose.
func (x *executor) pvVG(node string) (string, error) {
	out, err := x.o.Runner.Run(x.ctx, command.Command{Argv: []string{"lvm", "pvs", "--reportformat", "json", "-o", "vg_name", node}})
	if err != nil {
		return "", err
	}
	var rep struct {
		Report []struct {
			PV []struct {
				VG string `json:"vg_name"`
			} `json:"pv"`
		} `json:"report"`
	}
	if i := strings.IndexByte(string(out), '{'); i >= 0 {
		out = out[i:] // warnings come first on the same stream
	}
	if err := json.Unmarshal(out, &rep); err != nil || len(rep.Report) == 0 || len(rep.Report[0].PV) == 0 {
		return "", fmt.Errorf("lvm pvs %s: unexpected report: %s", node, out)
	}
	return rep.Report[0].PV[0].VG, nil
}

// lvsActive counts the VG's logical volumes that device-mapper has.
func (x *executor) lvsActive(vg string, lvs []string) int {
	_ = x.res.refresh()
	n := 0
	for _, lv := range lvs {
		dm := strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lv, "-", "--")
		for _, b := range x.res.devs {
			if b.DMName == dm {
				n++
				break
			}
		}
	}
	return n
}
