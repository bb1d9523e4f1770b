//go:build linux

package rescue

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// logSink sends each log entry to the console, the kernel log and a file.
// The rescue system has no journal: the console is what a provider's KVM
// or a VM's serial port shows, /dev/kmsg survives until the next boot and
// shows in dmesg over SSH, and the file is for `cat` over SSH.
type logSink struct {
	mu      sync.Mutex
	console io.Writer // nil when there is none
	kmsg    io.Writer
	file    io.Writer
	// printk reads the console loglevel: kmsg lines below it are echoed
	// to the console by the kernel, so they are not written there twice.
	printk func() int
	format logrus.Formatter
}

// newRescueLogger builds the rescue system's logger on the given sinks
// (each may be nil).
func newRescueLogger(console, kmsg, file io.Writer, printk func() int) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.DebugLevel)
	l.AddHook(&logSink{
		console: console, kmsg: kmsg, file: file, printk: printk,
		format: &logrus.TextFormatter{DisableColors: true, FullTimestamp: true, TimestampFormat: "15:04:05"},
	})
	return l
}

func (s *logSink) Levels() []logrus.Level { return logrus.AllLevels }

func (s *logSink) Fire(e *logrus.Entry) error {
	line, err := s.format.Format(e)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		_, _ = s.file.Write(line)
	}
	prio := kmsgPriority(e.Level)
	echoed := false
	if s.kmsg != nil && e.Level <= logrus.InfoLevel {
		// Debug lines stay out of the kernel's ring buffer: it is small.
		for _, l := range bytes.Split(bytes.TrimRight(line, "\n"), []byte("\n")) {
			for len(l) > 0 {
				n := min(len(l), 900) // a kmsg record holds about 1 KiB
				_, _ = fmt.Fprintf(s.kmsg, "<%d>nivis: %s\n", prio, l[:n])
				l = l[n:]
			}
		}
		echoed = s.printk != nil && prio < s.printk()
	}
	if s.console != nil && !echoed && e.Level <= logrus.InfoLevel {
		_, _ = s.console.Write(append([]byte("nivis: "), line...))
	}
	return nil
}

// kmsgPriority maps logrus levels to syslog priorities.
func kmsgPriority(l logrus.Level) int {
	switch l {
	case logrus.PanicLevel, logrus.FatalLevel:
		return 2
	case logrus.ErrorLevel:
		return 3
	case logrus.WarnLevel:
		return 4
	case logrus.InfoLevel:
		return 6
	default:
		return 7
	}
}

// consoleLoglevel reads the first field of /proc/sys/kernel/printk.
func consoleLoglevel() int {
	b, err := os.ReadFile("/proc/sys/kernel/printk")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}
