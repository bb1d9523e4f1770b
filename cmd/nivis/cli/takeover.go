package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/sshclient"
	"github.com/nivis/nivis/takeover"
)

// kexecFlags are the flags rescue and install share.
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

// options turns flags into takeover options; uploads local kernel/initrd
// files to the host's tmpfs first.
func (k *kexecFlags) options(ctx context.Context, s *Session) (takeover.KexecOptions, error) {
	o := takeover.KexecOptions{
		Force: k.force, PostKexecSSHPort: k.postPort, Append: k.appendArgs,
		RescueTimeout: k.rescueTimeout, WaitTimeout: k.waitTimeout,
		LoginUser: s.User(), NoWait: k.noWait,
	}
	for _, pk := range s.OfferedKeys() {
		o.AuthorizedKeys = append(o.AuthorizedKeys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))+" nivis-client")
	}
	var err error
	if o.Kernel, err = uploadLocal(ctx, s, k.kernel, "kernel"); err != nil {
		return o, err
	}
	if o.Initrd, err = uploadLocal(ctx, s, k.initrd, "initrd"); err != nil {
		return o, err
	}
	return o, nil
}

func uploadLocal(ctx context.Context, s *Session, local, name string) (string, error) {
	if local == "" {
		return "", nil
	}
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
	if err := s.Upload(ctx, f, st.Size(), remote, 0o600); err != nil {
		return "", err
	}
	return remote, nil
}

// dialer returns a takeover.Dialer that opens new sessions to target with
// the global SSH flags; port and expected host key override them.
func (g *Globals) dialer(target string) takeover.Dialer {
	return func(ctx context.Context, port int, expect ssh.PublicKey) (takeover.Conn, error) {
		o := g.sshOptions()
		if port != 0 {
			o.Port = port
		}
		if expect != nil {
			o.ExpectHostKey = expect
			o.RetryFor = -1 // the caller retries with its own countdown
		}
		c, err := sshclient.Dial(ctx, target, o)
		if err != nil {
			return nil, err
		}
		return &Session{Client: c, g: g}, nil
	}
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
