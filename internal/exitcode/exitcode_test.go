package exitcode

import (
	"errors"
	"fmt"
	"testing"
)

type remote struct{ code Code }

func (r remote) Error() string          { return "remote" }
func (r remote) ExitCode() (Code, bool) { return r.code, r.code != Failure }
func TestWrapKeepsTheInnermostCode(t *testing.T) {
	if got := Of(Wrap(Change, Errorf(Usage, "bad"))); got != Usage {
		t.Errorf("tagged: %v", got)
	}
	if got := Of(Wrap(Change, fmt.Errorf("ctx: %w", remote{Usage}))); got != Usage {
		t.Errorf("a remote usage error wrapped as a change: %v, want usage", got)
	}
	if got := Of(Wrap(Change, remote{Failure})); got != Change {
		t.Errorf("an untagged remote error: %v, want the caller's change", got)
	}
	if got := Of(errors.New("plain")); got != Failure {
		t.Errorf("plain: %v", got)
	}
	if Of(nil) != OK || Wrap(Usage, nil) != nil {
		t.Error("nil")
	}
}
