//go:build linux

package facts

import (
	"context"

	"github.com/nivis/nivis/internal/agent"
)

// Handlers are the agent verbs this package serves.
func Handlers() []agent.Handler {
	return []agent.Handler{
		agent.Handle(VerbFacts, func(ctx context.Context, _ *struct{}, ev *agent.Emitter) (*Facts, error) {
			ev.Step("facts", "gathering host facts")
			return Gather(ctx)
		}),
	}
}
