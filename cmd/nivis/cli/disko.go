package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/disko" // also registers the config kind "Disko"
	"github.com/nivis/nivis/disko/apply"
	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/logging"
)

// diskoOptions are the flags of `nivis disko`.
type diskoOptions struct {
	file                                            string
	mode, root, passwordFile, fstabOut, crypttabOut string
	dryRun, asJSON                                  bool
	disks                                           []string
}

func newDiskoCmd(g *Globals) *cobra.Command {
	var o diskoOptions
	cmd := &cobra.Command{
		Use:   "disko [--mode destroy,format,mount] [--root DIR] FILE",
		Short: "Partition, format and mount this machine's disks from a disko layout",
		Long: `disko applies a disk layout to this machine, as disko's own CLI does, without
Nix. FILE is disko's devices JSON (nix eval --json .#nixosConfigurations.X.config.disko.devices),
or a nivis config (YAML or JSON) with a disko: section.

Modes, run in this order: destroy (release and wipe the layout's disks), format
(create what is missing: tables, LUKS, LVM, md, filesystems, swap; what exists is
left alone), mount (mount everything under --root, swap on), unmount. Combine them
with commas: destroy,format,mount (the default), format,mount, mount, unmount.

First the layout is checked (every problem with its path and line), then the
disks are read and a plan is printed: each disk with its model, serial and size,
what it holds now, what will be DESTROYED, and every operation with its exact
command. A destroy asks for confirmation unless --yes. --dry-run stops after the
plan. Needs root. It refuses to change the disk the running system's root is on.`,
		Example: `  nivis disko --mode destroy,format,mount layout.json
  nivis disko --dry-run --disk main=/dev/vdb examples/simple-efi.json
  nivis disko --mode mount --root /mnt host.yaml
  nivis disko --mode format,mount --fstab /mnt/etc/fstab layout.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			return runDisko(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.mode, "mode", "destroy,format,mount", "what to do: destroy, format, mount, unmount, or a combination like format,mount")
	f.StringVar(&o.root, "root", "/mnt", "where the layout's mountpoints go")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan and every command, change nothing")
	f.BoolVar(&o.asJSON, "json", false, "print the report, plan and result as JSON")
	f.StringArrayVar(&o.disks, "disk", nil, "NAME=DEVICE: use DEVICE for the layout's disk NAME (repeatable)")
	f.StringVar(&o.passwordFile, "password-file", "", "file with the passphrase for LUKS containers that would ask for one")
	f.StringVar(&o.fstabOut, "fstab", "", "write the installed system's fstab here (- for stdout)")
	f.StringVar(&o.crypttabOut, "crypttab", "", "write the installed system's crypttab here (- for stdout)")
	return cmd
}

// diskoOutput is what --json prints.
type diskoOutput struct {
	File     string         `json:"file"`
	Report   []config.Entry `json:"report"`
	Plan     *disko.Plan    `json:"plan,omitempty"`
	Result   *disko.Result  `json:"result,omitempty"`
	Fstab    string         `json:"fstab,omitempty"`
	Crypttab string         `json:"crypttab,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// runDisko checks the layout, plans, confirms a destroy and applies it on
// this machine, then writes the tables asked for.
func runDisko(ctx context.Context, g *Globals, o diskoOptions) error {
	m, err := disko.ParseMode(o.mode)
	if err != nil {
		return exitcode.Wrap(exitcode.Usage, err)
	}
	l, rep, err := disko.ParseFile(o.file)
	if l == nil && err != nil && rep.Err() == nil {
		return exitcode.Wrap(exitcode.Usage, err)
	}
	for _, d := range o.disks {
		k, v, ok := strings.Cut(d, "=")
		if !ok || k == "" || v == "" {
			return exitcode.Errorf(exitcode.Usage, "--disk %q: use NAME=DEVICE, like main=/dev/vdb", d)
		}
		if l != nil {
			if err := l.SetDiskDevice(k, v); err != nil {
				return exitcode.Wrap(exitcode.Usage, err)
			}
		}
	}
	ro, err := diskoRunOptions(g, o, m)
	if err != nil {
		return err
	}
	var r config.Report
	r.Merge(rep)
	out := diskoOutput{File: o.file}
	if l != nil && !rep.HasErrors() {
		out.Plan, out.Result, err = apply.Run(ctx, l, ro, &r)
	} else {
		err = r.Err()
	}
	r.Sort()
	out.Report = r.Entries
	if out.Report == nil {
		out.Report = []config.Entry{}
	}
	if !o.asJSON {
		for _, e := range r.Entries {
			fmt.Fprintf(g.Stderr, "%s: %s\n", o.file, e)
		}
	}
	if err == nil && !o.dryRun && (o.fstabOut != "" || o.crypttabOut != "" || o.asJSON) && (m.Mount || m.Format) {
		err = exitcode.Wrap(exitcode.Change, diskoTables(g, o, l, &out))
	}
	return diskoReport(g, o, out, err)
}

// diskoRunOptions turns the flags into what apply.Run takes: the password,
// the log, the plan printer and the destroy confirmation.
func diskoRunOptions(g *Globals, o diskoOptions, m disko.Mode) (apply.RunOptions, error) {
	ro := apply.RunOptions{Mode: m, Options: apply.Options{Root: o.root, DryRun: o.dryRun}}
	if o.passwordFile != "" {
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return ro, exitcode.Wrap(exitcode.Usage, fmt.Errorf("--password-file: %w", err))
		}
		ro.Password = logging.Secret(strings.TrimRight(string(b), "\n"))
	}
	if g.Log != nil {
		ro.Log = g.opLog()
		ro.Event = func(e disko.Event) {
			g.Log.WithField("step", fmt.Sprintf("%d/%d", e.Index, e.Total)).WithField("status", e.Status).Debug(e.Summary)
		}
	}
	ro.Plan = func(p *disko.Plan) {
		if !o.asJSON {
			p.Render(g.Stdout)
		}
	}
	ro.Confirm = func(p *disko.Plan) error {
		var b strings.Builder
		b.WriteString("This DESTROYS everything on:\n")
		for _, d := range p.Destroys() {
			fmt.Fprintf(&b, "  %s", d.Device)
			if n := d.Now; n != nil {
				if n.Resolved != "" && n.Resolved != d.Device {
					fmt.Fprintf(&b, " (%s)", n.Resolved)
				}
				fmt.Fprintf(&b, ": %s, serial %s, %s; now %s", orUnknown(n.Model), orUnknown(n.Serial), disko.HumanBytes(n.Size), n.Describe())
			}
			b.WriteByte('\n')
		}
		return g.Confirm(strings.TrimRight(b.String(), "\n"), "yes")
	}
	return ro, nil
}

// diskoTables fills in the installed system's fstab and crypttab and
// writes them where asked.
func diskoTables(g *Globals, o diskoOptions, l *disko.Layout, out *diskoOutput) error {
	ids := apply.HostIDs(out.Result.Devices)
	var err error
	if out.Fstab, err = l.Fstab(ids); err != nil {
		return err
	}
	if out.Crypttab, err = l.Crypttab(ids); err != nil {
		return err
	}
	if err := writeTable(g, o.fstabOut, out.Fstab); err != nil {
		return err
	}
	return writeTable(g, o.crypttabOut, out.Crypttab)
}

// diskoReport prints the outcome: JSON, or a line for people.
func diskoReport(g *Globals, o diskoOptions, out diskoOutput, err error) error {
	if o.asJSON {
		if err != nil {
			out.Error = err.Error()
		}
		enc := json.NewEncoder(g.Stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(out); jerr != nil && err == nil {
			err = jerr
		}
	} else if err == nil && o.dryRun {
		fmt.Fprintf(g.Stdout, "\ndry run: nothing was changed\n")
	} else if err == nil && out.Result != nil {
		fmt.Fprintf(g.Stdout, "\n%d steps done, %d left alone (already there)\n", out.Result.Done, out.Result.Skipped)
	}
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func writeTable(g *Globals, path, content string) error {
	switch path {
	case "":
		return nil
	case "-":
		_, err := fmt.Fprint(g.Stdout, content)
		return err
	}
	tmp := path + ".nivis-tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
