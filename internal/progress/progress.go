// Package progress draws transfer progress (bytes, rate, ETA) for humans: a
// bar redrawn in place on a terminal, plain lines every few seconds
// otherwise (logs, CI), so long uploads are never silent.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nivis/nivis/internal/logging"
)

// Bar reports the progress of one transfer. The zero of a nil *Bar is
// valid and draws nothing, so callers need no nil checks.
type Bar struct {
	w     io.Writer
	label string
	total atomic.Int64
	done  atomic.Int64
	tty   bool
	start time.Time
	every time.Duration

	mu       sync.Mutex
	stop     chan struct{}
	stopped  chan struct{}
	finished bool
	lastLen  int
}

// Options tune a Bar; the zero value picks defaults.
type Options struct {
	// TTY forces terminal (redraw) or plain-line mode; nil detects it from w.
	TTY *bool
	// Interval between redraws: 200ms on a terminal, 5s for plain lines.
	Interval time.Duration
}

// New starts a bar on w for a transfer of total bytes (0 or less: unknown).
// A nil w gives a nil Bar, which draws nothing.
func New(w io.Writer, label string, total int64) *Bar {
	return NewWith(w, label, total, Options{})
}

// NewWith is New with options.
func NewWith(w io.Writer, label string, total int64, o Options) *Bar {
	if w == nil {
		return nil
	}
	tty := logging.IsTerminal(w)
	if o.TTY != nil {
		tty = *o.TTY
	}
	every := o.Interval
	if every <= 0 {
		every = 5 * time.Second
		if tty {
			every = 200 * time.Millisecond
		}
	}
	b := &Bar{w: w, label: label, tty: tty, start: time.Now(), every: every,
		stop: make(chan struct{}), stopped: make(chan struct{})}
	b.total.Store(total)
	go b.loop()
	return b
}

// Add records n more bytes done. Cheap: called on every read.
func (b *Bar) Add(n int64) {
	if b != nil {
		b.done.Add(n)
	}
}

// Set records the absolute number of bytes done (for progress events that
// carry totals, e.g. from the agent).
func (b *Bar) Set(done, total int64) {
	if b == nil {
		return
	}
	b.done.Store(done)
	if total > 0 {
		b.total.Store(total)
	}
}

// Done reports the bytes recorded so far.
func (b *Bar) Done() int64 {
	if b == nil {
		return 0
	}
	return b.done.Load()
}

// Finish stops redrawing and prints the final state once. err, when not
// nil, is shown instead of the completion summary.
func (b *Bar) Finish(err error) {
	if b == nil {
		return
	}
	b.mu.Lock()
	if b.finished {
		b.mu.Unlock()
		return
	}
	b.finished = true
	b.mu.Unlock()
	close(b.stop)
	<-b.stopped
	b.mu.Lock()
	defer b.mu.Unlock()
	line := b.render(time.Now(), true)
	if err != nil {
		line = fmt.Sprintf("%s: failed after %s: %v", b.label, FormatBytes(b.done.Load()), err)
	}
	b.draw(line, true)
}

// Reader wraps r so that every byte read is counted.
func (b *Bar) Reader(r io.Reader) io.Reader {
	if b == nil {
		return r
	}
	return &countingReader{r: r, b: b}
}

type countingReader struct {
	r io.Reader
	b *Bar
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.b.done.Add(int64(n))
	return n, err
}

func (b *Bar) loop() {
	defer close(b.stopped)
	t := time.NewTicker(b.every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.mu.Lock()
			b.draw(b.render(now, false), false)
			b.mu.Unlock()
		}
	}
}

// draw writes one state: in place on a terminal, one line otherwise.
func (b *Bar) draw(line string, final bool) {
	if b.tty {
		pad := ""
		if n := b.lastLen - len(line); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		b.lastLen = len(line)
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(b.w, "\r%s%s%s", line, pad, end)
		return
	}
	fmt.Fprintln(b.w, line)
}

const barWidth = 24

// render formats "label [=====>    ]  45% 123.4 MiB / 512.0 MiB  98.1 MiB/s  ETA 4s".
func (b *Bar) render(now time.Time, final bool) string {
	done, total := b.done.Load(), b.total.Load()
	elapsed := now.Sub(b.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	var sb strings.Builder
	sb.WriteString(b.label)
	if b.tty && total > 0 {
		filled := int(float64(barWidth) * float64(done) / float64(total))
		filled = min(max(filled, 0), barWidth)
		sb.WriteString(" [")
		sb.WriteString(strings.Repeat("=", filled))
		if filled < barWidth {
			sb.WriteString(">")
			sb.WriteString(strings.Repeat(" ", barWidth-filled-1))
		}
		sb.WriteString("]")
	}
	if total > 0 {
		fmt.Fprintf(&sb, " %3d%% %s / %s", percent(done, total), FormatBytes(done), FormatBytes(total))
	} else {
		fmt.Fprintf(&sb, " %s", FormatBytes(done))
	}
	fmt.Fprintf(&sb, "  %s/s", FormatBytes(int64(rate)))
	switch {
	case final:
		fmt.Fprintf(&sb, "  in %s", FormatDuration(elapsed))
	case total > 0 && rate > 0 && done < total:
		fmt.Fprintf(&sb, "  ETA %s", FormatDuration(time.Duration(float64(total-done)/rate*float64(time.Second))))
	case total > 0 && done < total:
		sb.WriteString("  ETA --")
	}
	return sb.String()
}

func percent(done, total int64) int {
	if total <= 0 {
		return 0
	}
	p := int(done * 100 / total)
	return min(max(p, 0), 100)
}

// FormatBytes prints n in binary units: "512 B", "1.5 KiB", "123.4 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// FormatDuration prints d rounded for humans: "850ms", "42s", "3m07s", "1h02m".
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second).Seconds()))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}
