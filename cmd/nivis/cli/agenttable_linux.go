package cli

import (
	diskoapply "github.com/nivis/nivis/disko/apply"
	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/facts"
	"github.com/nivis/nivis/kexec"
	"github.com/nivis/nivis/rescue"
	"github.com/nivis/nivis/sysmgr"
	"github.com/nivis/nivis/takeover/install"
)

// agentTable is every verb `nivis agent` and `nivis agent-stream` serve on
// a host, listed here and nowhere else.
func agentTable() *agent.Table {
	return agent.NewTable(
		facts.Handlers(),
		kexec.Handlers(),
		rescue.Handlers(),
		diskoapply.Handlers(),
		install.Handlers(),
		sysmgr.Handlers(),
	)
}
