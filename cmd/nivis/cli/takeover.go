package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/oplog"
	"github.com/nivis/nivis/internal/sshclient"
	"github.com/nivis/nivis/takeover"
)

// kexecFlags are the flags rescue, kexec and install share.
type kexecFlags struct {
	force         bool
	postPort      int
	kernel        string
	initrd        string
	appendArgs    string
	rescueTimeout time.Duration
	waitTimeout   time.Duration
	noWait        bool
}

func (k *kexecFlags) add(cmd *cobra.Command, custom bool) {
	f := cmd.Flags()
	f.BoolVar(&k.force, "force-kexec", false, "kexec even when the host already runs the nivis rescue system")
	f.IntVar(&k.postPort, "post-kexec-ssh-port", 0, "SSH port of the rescue system (default: the host's sshd port)")
	f.StringVar(&k.kernel, "kernel", "", "kernel image (a local file, uploaded) instead of the host's running kernel")
	f.StringVar(&k.appendArgs, "append", "", "extra kernel command line arguments")
	f.DurationVar(&k.waitTimeout, "wait-timeout", 10*time.Minute, "how long to wait for the host to come back after kexec")
	f.BoolVar(&k.noWait, "no-wait", false, "return once the kexec is scheduled, without reconnecting")
	if custom {
		f.StringVar(&k.initrd, "initrd", "", "initrd (a local file, uploaded) to boot instead of the nivis rescue image")
	}
	f.DurationVar(&k.rescueTimeout, "rescue-timeout", 15*time.Minute, "reboot the rescue system into the host's old system when no client connects within this time (0: never)")
}

// options turns the flags into takeover options; takeover fills in what
// comes from the connection (login user, client keys, uploads).
func (k *kexecFlags) options() takeover.KexecOptions {
	return takeover.KexecOptions{
		Force: k.force, PostKexecSSHPort: k.postPort, Append: k.appendArgs,
		RescueTimeout: k.rescueTimeout, WaitTimeout: k.waitTimeout, NoWait: k.noWait,
		KernelFile: k.kernel, InitrdFile: k.initrd,
	}
}

// sessions dials the target with the global SSH flags and remembers the
// last session it opened: the CLI made it, so it may use what only an SSH
// session knows (the keys offered, the address) without asking takeover.
type sessions struct {
	g      *Globals
	target string
	last   *Session
}

// dial is a takeover.Dialer; port and the expected host key override the
// flags.
func (d *sessions) dial(ctx context.Context, port int, expect ssh.PublicKey) (agent.Conn, error) {
	o := d.g.sshOptions()
	if port != 0 {
		o.Port = port
	}
	if expect != nil {
		o.ExpectHostKey = expect
		o.RetryFor = -1 // the caller retries with its own countdown
	}
	c, err := sshclient.Dial(ctx, d.target, o)
	if err != nil {
		return nil, err
	}
	d.last = &Session{Client: c, g: d.g}
	return d.last, nil
}

// clientKeys are the keys the last session offered, as authorized_keys
// lines: the rescue system admits them.
func (d *sessions) clientKeys() []string {
	if d.last == nil {
		return nil
	}
	var out []string
	for _, pk := range d.last.OfferedKeys() {
		out = append(out, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))+" nivis-client")
	}
	return out
}

// newTakeover is a takeover of target with the global flags.
func (g *Globals) newTakeover(target string) (*takeover.Takeover, *sessions) {
	d := &sessions{g: g, target: target}
	return &takeover.Takeover{Dial: d.dial, Log: g.Log, Out: g.Stderr, ClientKeys: d.clientKeys}, d
}

// opLog sends the operation log's lines to the logger at their level.
func (g *Globals) opLog() *oplog.Log {
	return oplog.New(func(level, line string) {
		if g.Log == nil {
			return
		}
		if level == oplog.Error {
			g.Log.Error(line)
			return
		}
		g.Log.Info(line)
	})
}

// rescueBanner tells the user how to get in.
func rescueBanner(g *Globals, s *Session, port int) {
	addr := s.Addr()
	host, p, _ := strings.Cut(addr, ":")
	if port == 0 {
		fmt.Sscanf(p, "%d", &port)
	}
	portArg := ""
	if port != 22 && port != 0 {
		portArg = fmt.Sprintf(" -p %d", port)
	}
	fmt.Fprintf(g.Stdout, "\nThe host runs the nivis rescue system (in RAM; its disks are untouched).\n")
	fmt.Fprintf(g.Stdout, "Host key: %s (the host's own)\n", ssh.FingerprintSHA256(s.HostKey()))
	fmt.Fprintf(g.Stdout, "Log in:   ssh%s root@%s\n", portArg, strings.Trim(host, "[]"))
	fmt.Fprintf(g.Stdout, "Leave:    reboot (back into the installed system)\n")
}
