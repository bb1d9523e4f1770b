package takeover

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/ssh"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/facts"
	"github.com/nivis/nivis/kexec"
)

// KexecOptions say how to kexec the host into the rescue system (or a
// custom kernel).
type KexecOptions struct {
	// Force kexecs even a host that already runs the nivis rescue system.
	Force bool
	// PostKexecSSHPort is the port the rescue SSH server listens on
	// (default: the host's own sshd port).
	PostKexecSSHPort int
	// Kernel, Initrd, Append override the kernel, the initrd (then no
	// rescue image is built) and add to the command line. Kernel and
	// Initrd are paths on the host; KernelFile and InitrdFile are local
	// files uploaded there first (they set Kernel and Initrd).
	Kernel, Initrd, Append string
	KernelFile, InitrdFile string
	// RescueTimeout: the rescue system reboots into the old one when no
	// client connects within it.
	RescueTimeout time.Duration
	// WaitTimeout bounds the wait for the host to come back.
	WaitTimeout time.Duration
	// AuthorizedKeys are extra keys allowed into the rescue system.
	AuthorizedKeys []string
	// Config is carried into the rescue system (YAML).
	Config string
	// Features of the disk layout to carry modules and tools for.
	Features []string
	// LoginUser whose authorized_keys are carried.
	LoginUser string
	// NoWait returns once the kexec is scheduled, without reconnecting.
	NoWait bool
}

// Takeover is one run against one host.
type Takeover struct {
	Dial Dialer
	Log  logrus.FieldLogger
	// Out is where the countdown and summaries go.
	Out io.Writer
	// ClientKeys returns the public keys (authorized_keys lines) the client
	// logs in with: the rescue system admits them.
	ClientKeys func() []string

	conn    Conn
	before  *facts.Facts
	hostKey ssh.PublicKey
	port    int
	after   *facts.Facts
	final   *facts.Facts
}

// Connect opens the first connection and gathers facts.
func (t *Takeover) Connect(ctx context.Context) (*facts.Facts, error) {
	c, err := t.Dial(ctx, 0, nil)
	if err != nil {
		return nil, err
	}
	t.conn = c
	t.hostKey = c.HostKey()
	f, err := facts.VerbFacts.Call(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	t.before = f
	return f, nil
}

// Conn is the current connection.
func (t *Takeover) Conn() Conn { return t.conn }

// Facts are the facts gathered by Connect (before any kexec).
func (t *Takeover) Facts() *facts.Facts { return t.before }

// Close closes the current connection.
func (t *Takeover) Close() error {
	if t.conn == nil {
		return nil
	}
	return t.conn.Close()
}

// Preflight asks the agent whether the host can kexec the rescue image,
// without changing anything, and turns failed checks into one error that
// lists each problem with its fix.
func (t *Takeover) Preflight(ctx context.Context, o KexecOptions) (*kexec.PreflightResult, error) {
	if t.before != nil && t.before.Virtualization.IsContainer {
		return nil, exitcode.Errorf(exitcode.Precondition, "the host is a %s container: a container cannot kexec; run nivis against the machine (VM or bare metal) itself", t.before.Virtualization.Container)
	}
	res, err := kexec.VerbPreflight.Call(ctx, t.conn, o.request())
	if err != nil {
		return nil, err
	}
	for _, c := range res.Checks {
		l := t.Log.WithField("check", c.Name)
		switch c.Status {
		case "ok":
			l.Debug(c.Detail)
		case "warn":
			l.Warn(c.Detail)
		default:
			l.Error(c.Detail)
		}
	}
	if !res.OK {
		var b strings.Builder
		b.WriteString("the host cannot be kexec'd into the rescue system; nothing was changed:")
		for _, c := range res.Checks {
			if c.Status == "fail" {
				fmt.Fprintf(&b, "\n  - %s: %s", c.Name, c.Detail)
				if c.Fix != "" {
					fmt.Fprintf(&b, "\n    fix: %s", c.Fix)
				}
			}
		}
		return res, exitcode.Errorf(exitcode.Precondition, "%s", b.String())
	}
	return res, nil
}

// complete fills in what the options take from the connection: the login
// user, the client's keys, and the local kernel and initrd, uploaded to the
// host's tmpfs.
func (t *Takeover) complete(ctx context.Context, o KexecOptions) (KexecOptions, error) {
	o.LoginUser = t.conn.User()
	if t.ClientKeys != nil {
		o.AuthorizedKeys = append(append([]string(nil), o.AuthorizedKeys...), t.ClientKeys()...)
	}
	var err error
	if o.KernelFile != "" {
		if o.Kernel, err = t.upload(ctx, o.KernelFile, "kernel"); err != nil {
			return o, err
		}
		o.KernelFile = ""
	}
	if o.InitrdFile != "" {
		if o.Initrd, err = t.upload(ctx, o.InitrdFile, "initrd"); err != nil {
			return o, err
		}
		o.InitrdFile = ""
	}
	return o, nil
}

func (t *Takeover) upload(ctx context.Context, local, name string) (string, error) {
	f, err := os.Open(local)
	if err != nil {
		return "", exitcode.Errorf(exitcode.Usage, "--%s: %v", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", exitcode.Wrap(exitcode.Usage, err)
	}
	remote := "/run/nivis/kexec/custom-" + name + "-" + filepath.Base(local)
	if err := t.conn.Upload(ctx, f, st.Size(), remote, 0o600); err != nil {
		return "", err
	}
	return remote, nil
}

// RescuePhases are the phases of `nivis rescue`: gather facts, check that
// the host can kexec, and kexec it into the rescue system (unless it runs
// it already and o.Force is not set).
func (t *Takeover) RescuePhases(o KexecOptions) []Phase {
	return []Phase{
		{Name: "facts", Run: func(ctx context.Context) error {
			f, err := t.Connect(ctx)
			if err != nil {
				return err
			}
			t.Log.WithField("os", f.OS.PrettyName).WithField("kernel", f.Kernel.Release).
				WithField("memory_mib", f.Memory.TotalBytes>>20).Info("host facts gathered")
			return nil
		}},
		{Name: "preflight", Run: func(ctx context.Context) error {
			if t.InRescue() && !o.Force {
				return nil
			}
			var err error
			if o, err = t.complete(ctx, o); err != nil {
				return err
			}
			_, err = t.Preflight(ctx, o)
			return err
		}},
		{Name: "kexec", Run: func(ctx context.Context) error {
			if t.InRescue() && !o.Force {
				t.Log.Info("the host already runs the nivis rescue system; not kexecing again (use --force-kexec to)")
				return nil
			}
			_, err := t.Kexec(ctx, o)
			return err
		}},
	}
}

// CustomKexec is `nivis kexec`: connect, check, and kexec the host into
// the kernel and initrd o names.
func (t *Takeover) CustomKexec(ctx context.Context, o KexecOptions) (*kexec.PrepareResult, error) {
	if _, err := t.Connect(ctx); err != nil {
		return nil, err
	}
	o, err := t.complete(ctx, o)
	if err != nil {
		return nil, err
	}
	if _, err := t.Preflight(ctx, o); err != nil {
		return nil, err
	}
	return t.Kexec(ctx, o)
}

func (o KexecOptions) request() *kexec.PrepareRequest {
	return &kexec.PrepareRequest{
		Config:               o.Config,
		AuthorizedKeys:       o.AuthorizedKeys,
		LoginUser:            o.LoginUser,
		SSHPort:              o.PostKexecSSHPort,
		RescueTimeoutSeconds: int(o.RescueTimeout / time.Second),
		Features:             o.Features,
		Kernel:               o.Kernel,
		Initrd:               o.Initrd,
		Append:               o.Append,
	}
}

// InRescue reports whether the host already runs the nivis rescue system.
func (t *Takeover) InRescue() bool { return t.before != nil && t.before.NivisRescue }

// Kexec assembles the image, loads it, triggers the kexec and waits for
// the host to come back into the rescue system with the same host key.
func (t *Takeover) Kexec(ctx context.Context, o KexecOptions) (*kexec.PrepareResult, error) {
	prep, err := kexec.VerbPrepare.Call(ctx, t.conn, o.request())
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Precondition, err)
	}
	if prep.Image != nil {
		t.Log.WithFields(logrus.Fields{
			"size_mib":    fmt.Sprintf("%.1f", float64(prep.Image.Size)/(1<<20)),
			"compression": prep.Image.Compression,
			"method":      prep.Method,
		}).Info("rescue image assembled and loaded")
	}
	if _, err := kexec.VerbExec.Call(ctx, t.conn, &kexec.ExecRequest{Delay: "2s"}); err != nil {
		return prep, exitcode.Wrap(exitcode.Change, err)
	}
	_ = t.conn.Close()
	t.conn = nil
	t.port = o.PostKexecSSHPort
	if o.NoWait {
		t.Log.Info("kexec scheduled; not waiting (--no-wait)")
		return prep, nil
	}
	t.Log.Info("kexec scheduled; waiting for the rescue system")
	c, f, err := WaitForNewBoot(ctx, t.Dial, WaitOptions{
		OldBootID: prep.BootID, Port: t.port, HostKey: t.hostKey,
		Deadline: o.WaitTimeout, Rescue: o.Initrd == "", Out: t.Out,
	})
	if err != nil {
		return prep, err
	}
	t.conn = c
	t.after = f
	return prep, nil
}
