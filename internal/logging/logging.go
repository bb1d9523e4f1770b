// Package logging builds the one logrus logger the CLI hands to everything
// else. Libraries never log on their own; they take this logger or return
// events.
package logging

import (
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/sirupsen/logrus"
	"golang.org/x/term"
)

// New returns a logger writing to w: text (coloured on a TTY) or JSON.
// verbosity 0 is info, 1 debug, 2+ trace.
func New(w io.Writer, format string, verbosity int) (*logrus.Logger, error) {
	l := logrus.New()
	l.SetOutput(w)
	switch format {
	case "", "text":
		l.SetFormatter(&logrus.TextFormatter{ForceColors: IsTerminal(w), DisableTimestamp: false, FullTimestamp: true, TimestampFormat: "15:04:05"})
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, fmt.Errorf("unknown --log-format %q: use text or json", format)
	}
	switch {
	case verbosity >= 2:
		l.SetLevel(logrus.TraceLevel)
	case verbosity == 1:
		l.SetLevel(logrus.DebugLevel)
	default:
		l.SetLevel(logrus.InfoLevel)
	}
	l.AddHook(redactHook{})
	return l, nil
}

// Discard is a logger that drops everything, for libraries given none.
func Discard() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Secret wraps a value that must never reach a log: it prints as [redacted].
type Secret string

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return "[redacted]" }
func (s Secret) MarshalJSON() ([]byte, error) {
	return []byte(`"[redacted]"`), nil
}

// Reveal returns the secret's value, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

var secretKey = regexp.MustCompile(`(?i)(password|passphrase|secret|private_?key|token)`)

// redactHook blanks log fields whose names say they hold a secret, a net
// under the Secret type for fields added carelessly.
type redactHook struct{}

func (redactHook) Levels() []logrus.Level { return logrus.AllLevels }
func (redactHook) Fire(e *logrus.Entry) error {
	for k := range e.Data {
		if secretKey.MatchString(k) {
			e.Data[k] = "[redacted]"
		}
	}
	return nil
}
