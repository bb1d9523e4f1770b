package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/sysmgr"
)

// hostFlags pick where a sysmgr verb runs: TARGET over SSH, or --local.
type hostFlags struct {
	local bool
	root  string
}

func (f *hostFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.local, "local", false, "act on this machine, without SSH (as root)")
	cmd.Flags().StringVar(&f.root, "root", "", "act on the tree at DIR instead of / (useradd/groupadd --prefix DIR, systemd-tmpfiles --root=DIR; no service manager runs there, so systemd calls are only recorded under DIR/var/lib/nivis)")
}

func (f *hostFlags) args(verb string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case f.local && len(args) > 0:
			return exitcode.Errorf(exitcode.Usage, "%s --local acts on this machine and takes no TARGET (got %q)", verb, args)
		case !f.local && len(args) != 1:
			return exitcode.Errorf(exitcode.Usage, "%s needs one TARGET ([user@]host[:port] or a Host from ~/.ssh/config), or --local for this machine", verb)
		}
		return nil
	}
}

// dial opens the connection of a sysmgr verb: an SSH session, or this
// process (--local), where the agent's own table serves the verbs. Events
// are logged with the host's name (fleets interleave hosts).
func (f *hostFlags) dial(ctx context.Context, g *Globals, name, target string) (agent.Conn, error) {
	render := func(ev agent.Event) { g.logHostEvent(name, ev) }
	if f.local {
		switch {
		case runtime.GOOS != "linux":
			return nil, exitcode.Errorf(exitcode.Usage, "--local works on a Linux host with systemd; from %s, give a TARGET", runtime.GOOS)
		case f.root == "" && !isRoot():
			return nil, exitcode.Errorf(exitcode.Precondition, "--local changes /etc and drives systemd: run it as root")
		}
		return &agent.Local{Table: agentTable(), OnEvent: render}, nil
	}
	sess, err := g.Connect(ctx, target)
	if err != nil {
		return nil, err
	}
	return &hostSession{Session: sess, render: render}, nil
}

// deploy is sysmgr's client side on these flags.
func (f *hostFlags) deploy(g *Globals) *sysmgr.Deploy {
	return &sysmgr.Deploy{
		Dial: func(ctx context.Context, name, target string) (agent.Conn, error) {
			return f.dial(ctx, g, name, target)
		},
		Load:  g.loadServices,
		Log:   g.logHostEvent,
		Root:  f.root,
		Local: f.local,
	}
}

// hostSession is an SSH session whose verbs' events carry the host name.
type hostSession struct {
	*Session
	render func(agent.Event)
}

func (s *hostSession) Call(ctx context.Context, verb string, req, resp any) error {
	if err := s.Agent(ctx); err != nil {
		return err
	}
	return agent.Call(ctx, s.Client, s.AgentCmd, verb, req, resp, s.render)
}

// logHostEvent logs an agent or deploy event with the host's name.
func (g *Globals) logHostEvent(name string, ev agent.Event) {
	if g.Log == nil || ev.Kind == "progress" {
		return
	}
	lvl, err := logrus.ParseLevel(ev.Level)
	if err != nil {
		lvl = logrus.InfoLevel
	}
	e := g.Log.WithField("host", name)
	if ev.Step != "" {
		e = e.WithField("step", ev.Step)
	}
	if len(ev.Fields) > 0 {
		e = e.WithFields(ev.Fields)
	}
	e.Log(lvl, firstNonEmpty(ev.Message, ev.Step))
}

// loadServices reads a Services config, printing every report entry.
func (g *Globals) loadServices(file string) (*sysmgr.Services, []sysmgr.SecretData, error) {
	b, secrets, rep, err := sysmgr.LoadBundle(file)
	for _, e := range rep.Entries {
		fmt.Fprintf(g.Stderr, "%s: %s\n", file, e)
	}
	if err != nil {
		var inv *config.InvalidError
		if errors.As(err, &inv) {
			return nil, nil, err
		}
		return nil, nil, exitcode.Wrap(exitcode.Usage, err)
	}
	return b, secrets, nil
}

// applyOptions are apply's flags.
type applyOptions struct {
	hf            hostFlags
	target, file  string
	inventory, on string
	parallel      int
	asJSON        bool
	sysmgr.ApplyOptions
}

func newApplyCmd(g *Globals) *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "apply TARGET -c services.yaml",
		Short: "Make a host run the systemd units and files a Services config declares (new generation)",
		Long: `apply reads a Services config (units, files, directories, symlinks, tmpfiles,
users, groups, secrets), sends it with every local file it references to the
host, and activates it there as a new generation: the plan from what the host
has to what the config declares runs under a journal; any failure reverts the
host to the previous generation completely and exits 5 with the failed unit's
status and journal.

Unmanaged files where the config wants one are refused (all listed, nothing
changed) unless the entry says onConflict: backup or overwrite.

Over SSH the new generation must be confirmed over a NEW SSH connection within
--confirm-timeout, or the host rolls itself back (an apply that breaks SSH
undoes itself); apply then exits 5. With --try nothing confirms: the generation
stays only until ` + "`nivis confirm TARGET`" + `, else it rolls back after the timeout.

With --inventory the config of each selected host is applied, --parallel at a
time, and a summary table is printed.`,
		Example: `  nivis apply root@web1 -c services.yaml -m "hello 1.2"
  nivis apply --local -c services.yaml
  nivis apply admin@web1 --sudo -c services.yaml --try --confirm-timeout 5m
  nivis apply --inventory hosts.yaml --on @web,db1 --parallel 4`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.inventory != "" && (len(args) > 0 || o.hf.local):
				return exitcode.Errorf(exitcode.Usage, "apply --inventory takes its targets from the inventory, not from arguments or --local")
			case o.inventory == "" && o.on != "":
				return exitcode.Errorf(exitcode.Usage, "--on selects hosts of an --inventory")
			case o.inventory == "" && o.file == "":
				return exitcode.Errorf(exitcode.Usage, "apply needs -c services.yaml (or --inventory hosts.yaml)")
			case o.inventory == "":
				return o.hf.args("apply")(cmd, args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = firstArg(args)
			o.ConfirmTimeoutSet = cmd.Flags().Changed("confirm-timeout")
			return g.runApply(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "config", "c", "", "the Services config (YAML or JSON)")
	f.StringVarP(&o.Message, "message", "m", "", "a note stored with the generation")
	f.DurationVar(&o.ConfirmTimeout, "confirm-timeout", 30*time.Second, "roll back unless confirmed over a new SSH connection within this time (0: no confirmation)")
	f.BoolVar(&o.Try, "try", false, "keep the generation only until `nivis confirm` (default window 5m unless --confirm-timeout is given)")
	f.DurationVar(&o.JobTimeout, "job-timeout", 90*time.Second, "how long one unit's start, stop or restart may take")
	f.StringVar(&o.inventory, "inventory", "", "apply to the hosts of an Inventory file")
	f.StringVar(&o.on, "on", "", "with --inventory: hosts by name, @tag or glob, comma-separated")
	f.IntVar(&o.parallel, "parallel", 10, "with --inventory: hosts applied at the same time")
	f.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	o.hf.add(cmd)
	return cmd
}

func (g *Globals) runApply(ctx context.Context, o applyOptions) error {
	if o.inventory != "" {
		return g.applyFleet(ctx, o)
	}
	res, err := o.hf.deploy(g).Apply(ctx, sysmgr.InventoryHost{Name: o.target, Target: o.target, Config: o.file}, o.ApplyOptions)
	if res != nil && res.Result != nil && o.asJSON {
		_ = g.printJSONResult(res.Result)
	} else if res != nil && res.Result != nil && res.Result.Plan != nil {
		fmt.Fprint(g.Stdout, res.Result.Plan.String())
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(g.Stdout, res.Summary())
	return nil
}

// applyFleet applies each selected host's config and prints the table.
func (g *Globals) applyFleet(ctx context.Context, o applyOptions) error {
	hosts, rep, err := sysmgr.LoadInventory(o.inventory)
	for _, e := range rep.Entries {
		fmt.Fprintf(g.Stderr, "%s: %s\n", o.inventory, e)
	}
	if err != nil {
		return err
	}
	if hosts, err = sysmgr.SelectHosts(hosts, o.on); err != nil {
		return exitcode.Wrap(exitcode.Usage, err)
	}
	results, err := o.hf.deploy(g).ApplyFleet(ctx, hosts, o.parallel, o.ApplyOptions)
	if o.asJSON {
		if jerr := printFleetJSON(g, results); jerr != nil {
			return jerr
		}
		return err
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tTARGET\tRESULT\tGENERATION\tCHANGES\tTIME\tERROR")
	for _, r := range results {
		gen, ch := "-", "-"
		if r.Result != nil && r.Result.Generation > 0 {
			gen, ch = fmt.Sprint(r.Result.Generation), fmt.Sprint(r.Result.Changes)
		}
		msg := ""
		if r.Err != nil {
			msg = strings.SplitN(r.Err.Error(), "\n", 2)[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Target, r.Status, gen, ch, r.Took.Round(100*time.Millisecond), msg)
	}
	tw.Flush()
	return err
}

func printFleetJSON(g *Globals, results []*sysmgr.HostResult) error {
	type row struct {
		Host       string  `json:"host"`
		Target     string  `json:"target"`
		Status     string  `json:"status"`
		Generation int     `json:"generation,omitempty"`
		Changes    int     `json:"changes"`
		Seconds    float64 `json:"seconds"`
		Error      string  `json:"error,omitempty"`
	}
	var rows []row
	for _, r := range results {
		rw := row{Host: r.Name, Target: r.Target, Status: r.Status, Seconds: r.Took.Seconds()}
		if r.Result != nil {
			rw.Generation, rw.Changes = r.Result.Generation, r.Result.Changes
		}
		if r.Err != nil {
			rw.Error = r.Err.Error()
		}
		rows = append(rows, rw)
	}
	return g.printJSONResult(rows)
}

// isRoot says whether this process may change /.
func isRoot() bool { return os.Geteuid() == 0 }

// callHost runs one sysmgr verb on target over a connection of its own.
func callHost[Req, Res any](ctx context.Context, g *Globals, hf hostFlags, target string, v agent.Verb[Req, Res], req *Req) (*Res, error) {
	conn, err := hf.dial(ctx, g, target, target)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return v.Call(ctx, conn, req)
}

// printJSONResult writes v to stdout, indented, for --json.
func (g *Globals) printJSONResult(v any) error {
	enc := json.NewEncoder(g.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
