package disko

// Event reports a step of an execution.
type Event struct {
	Index   int    `json:"index"` // 1-based op number
	Total   int    `json:"total"`
	Op      string `json:"op"`
	Phase   string `json:"phase"`
	Summary string `json:"summary"`
	// Status is started, done, skipped or failed.
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Result is what an execution did.
type Result struct {
	Done    int `json:"done"`
	Skipped int `json:"skipped"`
	// Changed lists the ops that changed something, hooks excluded: a
	// second run of the same mode leaves it empty.
	Changed []string `json:"changed,omitempty"`
	// Devices maps each layout device name that was resolved to its node.
	Devices map[string]string `json:"devices,omitempty"`
}
