package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/nivis/nivis/internal/exitcode"
)

// Confirm asks the user to type want (e.g. "yes" or a hostname) before
// something destructive. --yes answers for them; with no terminal and no
// --yes the answer is no, so scripts never destroy by accident.
func (g *Globals) Confirm(question, want string) error {
	if g.Yes {
		return nil
	}
	if !g.stdinIsTerminal() {
		return exitcode.Errorf(exitcode.Aborted, "%s: refusing without confirmation (no terminal to ask on); pass --yes to proceed", question)
	}
	fmt.Fprintf(g.Stderr, "%s\nType %q to continue: ", question, want)
	line, _ := bufio.NewReader(g.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != want {
		return exitcode.Errorf(exitcode.Aborted, "not confirmed; nothing was changed")
	}
	return nil
}
