//go:build linux

package facts

import (
	"context"
	"encoding/json"

	"github.com/nivis/nivis/internal/agent"
)

// The agent verb "facts": no request, the result is a Facts.
func init() {
	agent.Register("facts", func(ctx context.Context, _ json.RawMessage, ev *agent.Emitter) (any, error) {
		ev.Step("facts", "gathering host facts")
		return Gather(ctx)
	})
}
