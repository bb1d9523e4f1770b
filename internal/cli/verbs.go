package cli

// Packages that only serve agent verbs on the host: imported for their
// registrations, so `nivis agent VERB` knows them.
import (
	_ "github.com/nivis/nivis/rescue"
	_ "github.com/nivis/nivis/takeover/install"
)
