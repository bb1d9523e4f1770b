package facts

import "github.com/nivis/nivis/internal/agent"

// VerbFacts gathers the host's facts; it takes no request.
var VerbFacts = agent.Verb[struct{}, Facts]{Name: "facts"}
