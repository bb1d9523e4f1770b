package apply

import (
	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/command"
)

// LocalHost describes the machine this process runs on.
func LocalHost() *disko.Host {
	return &disko.Host{
		HasTool:  func(n string) bool { _, ok := command.Find(n); return ok },
		CanMount: kernelCanMount,
	}
}
