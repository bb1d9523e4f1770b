package cli

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/progress"
	"github.com/nivis/nivis/internal/sshclient"
)

// Session is one SSH connection to a target plus, once Agent has run, the
// command that starts the nivis agent there.
type Session struct {
	*sshclient.Client
	AgentCmd string

	g         *Globals
	agentOnce sync.Once
	agentErr  error
}

// Connect dials target with the global SSH flags (-p, -i, -o,
// --env-password); progress bars go to stderr.
func (g *Globals) Connect(ctx context.Context, target string) (*Session, error) {
	c, err := sshclient.Dial(ctx, target, g.sshOptions())
	if err != nil {
		return nil, err
	}
	return &Session{Client: c, g: g}, nil
}

func (g *Globals) sshOptions() sshclient.Options {
	return sshclient.Options{
		Port:        g.Port,
		Identities:  g.Identities,
		Options:     g.Options,
		EnvPassword: g.EnvPassword,
		Log:         g.Log,
		Progress:    g.progressWriter(),
	}
}

// progressWriter is stderr, except with --log-format json, where progress
// lines become log entries so stderr stays one JSON object per line.
func (g *Globals) progressWriter() io.Writer {
	if g.LogFormat == "json" && g.Log != nil {
		return &logLines{log: g.Log}
	}
	return g.Stderr
}

// Agent makes sure the agent is on the host (uploading it if needed) and
// sets AgentCmd; with --sudo it runs through sudo or doas. Runs once.
func (s *Session) Agent(ctx context.Context) error {
	s.agentOnce.Do(func() {
		s.AgentCmd, s.agentErr = s.EnsureAgent(ctx, s.g.Sudo)
	})
	return s.agentErr
}

// Call runs agent verb on the host with req, decodes the result into resp,
// and renders the agent's events: log lines through the logger at their
// level, progress as a bar.
func (s *Session) Call(ctx context.Context, verb string, req, resp any) error {
	if err := s.Agent(ctx); err != nil {
		return err
	}
	r := &eventRenderer{log: s.g.Log, w: s.g.progressWriter()}
	defer r.finish()
	return agent.Call(ctx, s.Client, s.AgentCmd, verb, req, resp, r.render)
}

// Stream runs a streaming agent verb: req on the command line, data on
// stdin; events are rendered as Call's are.
func (s *Session) Stream(ctx context.Context, verb string, req any, data io.Reader, resp any) error {
	if err := s.Agent(ctx); err != nil {
		return err
	}
	r := &eventRenderer{log: s.g.Log, w: s.g.progressWriter()}
	defer r.finish()
	return agent.CallStream(ctx, s.Client, s.AgentCmd, verb, req, data, resp, r.render)
}

// The SSH session is the connection takeover, sysmgr and disko use.
var _ agent.Conn = (*Session)(nil)

// eventRenderer turns agent events into log entries and progress bars.
type eventRenderer struct {
	log  *logrus.Logger
	w    io.Writer
	bar  *progress.Bar
	step string
}

func (r *eventRenderer) render(ev agent.Event) {
	switch ev.Kind {
	case "progress":
		if r.bar == nil || ev.Step != r.step {
			r.finish()
			label := ev.Step
			if label == "" {
				label = ev.Message
			}
			r.bar = progress.New(r.w, label, ev.Total)
			r.step = ev.Step
		}
		r.bar.Set(ev.Done, ev.Total)
		if ev.Total > 0 && ev.Done >= ev.Total {
			r.finish()
		}
	case "step":
		r.finish()
		r.entry(ev).Info(firstNonEmpty(ev.Message, ev.Step))
	default: // "log" and anything newer than this client
		if r.log == nil {
			return
		}
		lvl, err := logrus.ParseLevel(ev.Level)
		if err != nil {
			lvl = logrus.InfoLevel
		}
		r.entry(ev).Log(lvl, ev.Message)
	}
}

func (r *eventRenderer) entry(ev agent.Event) *logrus.Entry {
	l := r.log
	if l == nil {
		l = logrus.New()
		l.SetOutput(io.Discard)
	}
	e := logrus.NewEntry(l).WithField("remote", true)
	if ev.Step != "" {
		e = e.WithField("step", ev.Step)
	}
	if len(ev.Fields) > 0 {
		e = e.WithFields(ev.Fields)
	}
	return e
}

func (r *eventRenderer) finish() {
	if r.bar != nil {
		r.bar.Finish(nil)
		r.bar = nil
		r.step = ""
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// logLines logs each written line at info level.
type logLines struct {
	log *logrus.Logger
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.Reset()
			l.buf.WriteString(line) // keep the partial line for the next write
			return len(p), nil
		}
		if s := strings.TrimSpace(line); s != "" {
			l.log.WithField("progress", true).Info(s)
		}
	}
}
