//go:build !linux

package cli

import "github.com/nivis/nivis/internal/agent"

// agentTable is empty off Linux: the agent only runs on Linux hosts.
func agentTable() *agent.Table { return agent.NewTable() }
