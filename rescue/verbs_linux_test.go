//go:build linux

package rescue

import (
	"slices"
	"testing"

	"github.com/nivis/nivis/internal/agent"
)

func TestVerbsRegistered(t *testing.T) {
	for _, v := range []string{"rescue-init", "rescue-reboot"} {
		if !slices.Contains(agent.NewTable(Handlers()).Names(), v) {
			t.Errorf("verb %s is not registered", v)
		}
	}
	if !isRescueInit([]string{"/bin/uinit", "agent", "rescue-init"}) || isRescueInit([]string{"nivis", "agent", "facts"}) || isRescueInit([]string{"/bin/uinit"}) {
		t.Error("isRescueInit")
	}
}
