package apply

import (
	"fmt"
	"os"

	"github.com/nivis/nivis/disko"
)

// mdadmCreate creates the array unless it exists, then clears a stale
// partition table from an earlier life.
func (x *executor) mdadmCreate(op *disko.Op) (string, error) {
	if _, err := (&Resolver{Wait: 1}).Find(x.ctx, "/dev/md/"+op.Name); err == nil {
		return "/dev/md/" + op.Name + " exists", nil
	}
	o, err := x.withMembers(op)
	if err != nil {
		return "", err
	}
	if err := x.run(o.ToolArgv(""), []byte("y\n"), nil); err != nil {
		return "", err
	}
	node, err := x.res.Resolve(x.ctx, "/dev/md/"+op.Name)
	if err != nil {
		return "", fmt.Errorf("the new array did not appear: %w", err)
	}
	x.result.Devices[op.Device] = node
	// mdadm arrays can show a stale partition table from an earlier life.
	f, size, _, err := openBlock(node, os.O_RDWR)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return "", zeroEnds(f, size)
}
