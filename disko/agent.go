package disko

import (
	"encoding/json"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/config"
)

// VerbDisko is the agent verb that runs a layout on the agent's host.
var VerbDisko = agent.Verb[AgentRequest, AgentResult]{Name: "disko"}

// AgentRequest asks the agent to run a layout. Password is only ever sent
// on the agent's stdin and never logged.
type AgentRequest struct {
	// Layout is disko.devices as JSON (ParseBytes reads it).
	Layout        json.RawMessage   `json:"layout"`
	Mode          string            `json:"mode"`
	Root          string            `json:"root,omitempty"`
	AllowRootDisk bool              `json:"allowRootDisk,omitempty"`
	DryRun        bool              `json:"dryRun,omitempty"`
	Disks         map[string]string `json:"disks,omitempty"` // disk key -> device, like --disk
	Password      string            `json:"password,omitempty"`
	// Tables asks for fstab and crypttab of the result.
	Tables bool `json:"tables,omitempty"`
}

// AgentResult is what the agent answers.
type AgentResult struct {
	Plan     *Plan          `json:"plan,omitempty"`
	Result   *Result        `json:"result,omitempty"`
	Report   []config.Entry `json:"report,omitempty"`
	Fstab    string         `json:"fstab,omitempty"`
	Crypttab string         `json:"crypttab,omitempty"`
}

// LayoutJSON renders a layout file's disko devices as the JSON an
// AgentRequest carries (the file may be YAML or a nivis config).
func LayoutJSON(raw []byte) (json.RawMessage, config.Report, error) {
	node, r := devicesNode(raw)
	if node == nil || r.HasErrors() {
		return nil, r, r.Err()
	}
	var v any
	if err := node.Decode(&v); err != nil {
		return nil, r, err
	}
	b, err := json.Marshal(v)
	return b, r, err
}
