package apply

import (
	"fmt"
	"os"

	"github.com/nivis/nivis/disko"
)

func (x *executor) mdadmCreate(op *disko.Op) (string, error) {
	if _, err := (&Resolver{Wait: 1}).Find(x.ctx, "/dev/md/"+op.Name); err == nil {
		return "/dev/md/" + op.Name + " exists", nil
	}
	o := *op
	o.Members = nil
	for _, m := range op.Members {
		n, err := x.member(m)
		if err != nil {
			return "", err
		}
		o.Members = append(o.Members, n)
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
	f, err := os.OpenFile(node, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	size, _, err := blockSize(f)
	if err != nil {
		return "", err
	}
	return "", zeroEnds(f, size)
}
