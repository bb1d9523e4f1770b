package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
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
	cmd.Flags().StringVar(&f.root, "root", "", "act on the tree at DIR instead of / (tests; systemd calls are then only recorded under DIR/var/lib/nivis)")
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

// sysmgrHost is one host the sysmgr verbs talk to: an SSH session, or this
// process (--local), where the same agent code runs in-process.
type sysmgrHost struct {
	g      *Globals
	name   string // for log fields in fleets
	target string
	sess   *Session
	local  bool
}

func (f *hostFlags) open(ctx context.Context, g *Globals, target string) (*sysmgrHost, error) {
	if f.local {
		switch {
		case runtime.GOOS != "linux":
			return nil, exitcode.Errorf(exitcode.Usage, "--local works on a Linux host with systemd; from %s, give a TARGET", runtime.GOOS)
		case f.root == "" && !isRoot():
			return nil, exitcode.Errorf(exitcode.Precondition, "--local changes /etc and drives systemd: run it as root")
		}
		return &sysmgrHost{g: g, name: "local", target: "local", local: true}, nil
	}
	sess, err := g.Connect(ctx, target)
	if err != nil {
		return nil, err
	}
	return &sysmgrHost{g: g, name: target, target: target, sess: sess}, nil
}

func (h *sysmgrHost) Close() {
	if h.sess != nil {
		h.sess.Close()
		h.sess = nil
	}
}

// call runs an agent verb, rendering its events through the logger with
// the host's name (fleets interleave hosts).
func (h *sysmgrHost) call(ctx context.Context, verb string, req, resp any) error {
	render := func(ev agent.Event) {
		if h.g.Log == nil || ev.Kind == "progress" {
			return
		}
		lvl, err := logrus.ParseLevel(ev.Level)
		if err != nil {
			lvl = logrus.InfoLevel
		}
		e := h.g.Log.WithField("host", h.name)
		if ev.Step != "" {
			e = e.WithField("step", ev.Step)
		}
		if len(ev.Fields) > 0 {
			e = e.WithFields(ev.Fields)
		}
		e.Log(lvl, firstNonEmpty(ev.Message, ev.Step))
	}
	if h.local {
		return agent.Call(ctx, inProcessAgent{}, "nivis", verb, req, resp, render)
	}
	if err := h.sess.Agent(ctx); err != nil {
		return err
	}
	return agent.Call(ctx, h.sess.Client, h.sess.AgentCmd, verb, req, resp, render)
}

// inProcessAgent runs agent verbs in this process: --local uses exactly
// the code the agent runs on a remote host, protocol included.
type inProcessAgent struct{}

func (inProcessAgent) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	f := strings.Fields(cmd)
	return agentTable().Serve(ctx, f[len(f)-1], stdin, stdout)
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

func newApplyCmd(g *Globals) *cobra.Command {
	var (
		hf             hostFlags
		file, message  string
		inventory, on  string
		parallel       int
		confirmTimeout time.Duration
		jobTimeout     time.Duration
		try, asJSON    bool
	)
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
			case inventory != "" && (len(args) > 0 || hf.local):
				return exitcode.Errorf(exitcode.Usage, "apply --inventory takes its targets from the inventory, not from arguments or --local")
			case inventory == "" && on != "":
				return exitcode.Errorf(exitcode.Usage, "--on selects hosts of an --inventory")
			case inventory == "" && file == "":
				return exitcode.Errorf(exitcode.Usage, "apply needs -c services.yaml (or --inventory hosts.yaml)")
			case inventory == "":
				return hf.args("apply")(cmd, args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			opts := applyOptions{message: message, confirmTimeout: confirmTimeout, try: try, jobTimeout: jobTimeout,
				explicitTimeout: cmd.Flags().Changed("confirm-timeout")}
			if inventory != "" {
				return g.applyFleet(ctx, inventory, on, parallel, hf, opts, asJSON)
			}
			target := "local"
			if len(args) == 1 {
				target = args[0]
			}
			res, err := g.applyOne(ctx, hf, target, target, file, opts)
			if res != nil && res.result != nil && asJSON {
				enc := json.NewEncoder(g.Stdout)
				enc.SetIndent("", "  ")
				_ = enc.Encode(res.result)
			} else if res != nil && res.result != nil && res.result.Plan != nil {
				fmt.Fprint(g.Stdout, res.result.Plan.String())
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(g.Stdout, res.summary())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "config", "c", "", "the Services config (YAML or JSON)")
	f.StringVarP(&message, "message", "m", "", "a note stored with the generation")
	f.DurationVar(&confirmTimeout, "confirm-timeout", 30*time.Second, "roll back unless confirmed over a new SSH connection within this time (0: no confirmation)")
	f.BoolVar(&try, "try", false, "keep the generation only until `nivis confirm` (default window 5m unless --confirm-timeout is given)")
	f.DurationVar(&jobTimeout, "job-timeout", 90*time.Second, "how long one unit's start, stop or restart may take")
	f.StringVar(&inventory, "inventory", "", "apply to the hosts of an Inventory file")
	f.StringVar(&on, "on", "", "with --inventory: hosts by name, @tag or glob, comma-separated")
	f.IntVar(&parallel, "parallel", 10, "with --inventory: hosts applied at the same time")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	hf.add(cmd)
	return cmd
}

type applyOptions struct {
	message         string
	confirmTimeout  time.Duration
	explicitTimeout bool
	try             bool
	jobTimeout      time.Duration
}

// hostResult is one host's outcome, for the output and the fleet table.
type hostResult struct {
	name, target string
	result       *sysmgr.ApplyResult
	status       string // applied, unchanged, on trial, failed, rolled back
	err          error
	took         time.Duration
}

func (r *hostResult) summary() string {
	res := r.result
	switch r.status {
	case "unchanged":
		return fmt.Sprintf("%s: no changes; generation %d is active", r.name, res.Generation)
	case "on trial":
		return fmt.Sprintf("%s: generation %d is active on trial until %s; run `nivis confirm %s` to keep it, otherwise it rolls back to %d",
			r.name, res.Generation, res.Pending.Deadline.Local().Format(time.RFC3339), r.target, res.Pending.Previous)
	}
	return fmt.Sprintf("%s: generation %d is active (%d changes)", r.name, res.Generation, res.Changes)
}

// applyOne applies file to one host and runs the confirm-or-rollback
// handshake for it.
func (g *Globals) applyOne(ctx context.Context, hf hostFlags, name, target, file string, o applyOptions) (*hostResult, error) {
	start := time.Now()
	r := &hostResult{name: name, target: target}
	fail := func(err error) (*hostResult, error) {
		r.err, r.status, r.took = err, "failed", time.Since(start)
		return r, err
	}
	bundle, secrets, err := g.loadServices(file)
	if err != nil {
		return fail(err)
	}
	req := &sysmgr.ApplyRequest{Root: hf.root, Bundle: bundle, Secrets: secrets, Message: o.message, Try: o.try, JobTimeout: o.jobTimeout}
	switch {
	case o.try && !o.explicitTimeout:
		req.ConfirmTimeout = 5 * time.Minute
	case o.try || !hf.local:
		req.ConfirmTimeout = o.confirmTimeout
	}
	h, err := hf.open(ctx, g, target)
	if err != nil {
		return fail(err)
	}
	r.result = &sysmgr.ApplyResult{}
	err = h.call(ctx, sysmgr.VerbApply.Name, req, r.result)
	// The confirmation must come over a new connection: this one may be the
	// only thing still working.
	h.Close()
	for _, note := range r.result.Recovered {
		g.Log.WithField("host", name).Warn(note)
	}
	if err != nil {
		return fail(err)
	}
	r.status = "applied"
	if r.result.Plan != nil && r.result.Plan.Empty() && !r.result.New {
		r.status = "unchanged"
	}
	if p := r.result.Pending; p != nil {
		if p.Try {
			r.status = "on trial"
		} else if err := g.confirmNew(ctx, hf, name, target, p, req.ConfirmTimeout); err != nil {
			r.status = "rolled back"
			r.err, r.took = err, time.Since(start)
			return r, err
		}
	}
	r.took = time.Since(start)
	return r, nil
}

// confirmNew confirms generation p over a new SSH connection, retrying
// until the window closes; when it cannot, it waits for the host's own
// rollback and reports it.
func (g *Globals) confirmNew(ctx context.Context, hf hostFlags, name, target string, p *sysmgr.Pending, window time.Duration) error {
	log := g.Log.WithField("host", name)
	// The host's deadline is on its clock; ours starts later, so aiming a
	// little early keeps clock skew out of it.
	by := time.Now().Add(window - window/10)
	var lastErr error
	for time.Now().Before(by) {
		cctx, cancel := context.WithDeadline(ctx, by)
		h, err := hf.open(cctx, g, target)
		if err == nil {
			var res sysmgr.ConfirmResult
			err = h.call(cctx, sysmgr.VerbConfirm.Name, &sysmgr.ConfirmRequest{Root: hf.root, Generation: p.Generation}, &res)
			h.Close()
		}
		cancel()
		if err == nil {
			log.Infof("generation %d confirmed over a new SSH connection", p.Generation)
			return nil
		}
		if exitcode.Of(err) == exitcode.Change {
			return err // the host already rolled back
		}
		lastErr = err
		log.Warnf("confirming over a new SSH connection failed (%v); retrying until the window closes", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	log.Errorf("could not reach the host over a new SSH connection; it rolls back to generation %d by itself", p.Previous)
	msg := fmt.Sprintf("generation %d was not confirmed over a new SSH connection within %s (last error: %v); the host rolls back to generation %d by itself",
		p.Generation, window, lastErr, p.Previous)
	// Look once more after the deadline to report what the host did.
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(by) + window/10 + 10*time.Second):
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if h, err := hf.open(cctx, g, target); err == nil {
			var gens sysmgr.GenerationsResult
			if err := h.call(cctx, sysmgr.VerbGenerations.Name, &sysmgr.RootRequest{Root: hf.root}, &gens); err == nil {
				if gens.Current == p.Previous {
					msg = fmt.Sprintf("generation %d was not confirmed over a new SSH connection (last error: %v); the host rolled back to generation %d and answers again",
						p.Generation, lastErr, p.Previous)
				} else {
					msg += fmt.Sprintf("; the host now reports generation %d as current", gens.Current)
				}
			}
			h.Close()
		}
	}
	return exitcode.Errorf(exitcode.Change, "%s", msg)
}

// applyFleet applies each selected host's config, parallel at a time.
func (g *Globals) applyFleet(ctx context.Context, file, on string, parallel int, hf hostFlags, o applyOptions, asJSON bool) error {
	hosts, rep, err := sysmgr.LoadInventory(file)
	for _, e := range rep.Entries {
		fmt.Fprintf(g.Stderr, "%s: %s\n", file, e)
	}
	if err != nil {
		return err
	}
	if hosts, err = sysmgr.SelectHosts(hosts, on); err != nil {
		return exitcode.Wrap(exitcode.Usage, err)
	}
	if parallel < 1 {
		parallel = 1
	}
	results := make([]*hostResult, len(hosts))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func(i int, h sysmgr.InventoryHost) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			g.Log.WithField("host", h.Name).WithField("target", h.Target).Info("applying")
			r, err := g.applyOne(ctx, hf, h.Name, h.Target, h.Config, o)
			e := g.Log.WithField("host", h.Name).WithField("status", r.status).WithField("duration", r.took.Round(time.Millisecond).String())
			if r.result != nil {
				e = e.WithField("generation", r.result.Generation).WithField("changes", r.result.Changes)
			}
			if err != nil {
				e.WithField("error", err.Error()).Error("host failed")
			} else {
				e.Info("host done")
			}
			results[i] = r
		}(i, h)
	}
	wg.Wait()
	if asJSON {
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
			rw := row{Host: r.name, Target: r.target, Status: r.status, Seconds: r.took.Seconds()}
			if r.result != nil {
				rw.Generation, rw.Changes = r.result.Generation, r.result.Changes
			}
			if r.err != nil {
				rw.Error = r.err.Error()
			}
			rows = append(rows, rw)
		}
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tTARGET\tRESULT\tGENERATION\tCHANGES\tTIME\tERROR")
		for _, r := range results {
			gen, ch := "-", "-"
			if r.result != nil && r.result.Generation > 0 {
				gen, ch = fmt.Sprint(r.result.Generation), fmt.Sprint(r.result.Changes)
			}
			msg := ""
			if r.err != nil {
				msg = strings.SplitN(r.err.Error(), "\n", 2)[0]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.name, r.target, r.status, gen, ch, r.took.Round(100*time.Millisecond), msg)
		}
		tw.Flush()
	}
	var failed []string
	code := exitcode.OK
	for _, r := range results {
		if r.err != nil {
			failed = append(failed, r.name)
			if c := exitcode.Of(r.err); code == exitcode.OK || c == exitcode.Change {
				code = c
			}
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return exitcode.Errorf(code, "%d of %d hosts failed: %s", len(failed), len(results), strings.Join(failed, ", "))
	}
	return nil
}

// isRoot says whether this process may change /.
func isRoot() bool { return os.Geteuid() == 0 }
