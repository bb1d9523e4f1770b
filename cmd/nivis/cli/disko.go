package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/disko" // also registers the config kind "Disko"
	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/logging"
)

func newDiskoCmd(g *Globals) *cobra.Command {
	var (
		mode, root, passwordFile, fstabOut, crypttabOut string
		dryRun, asJSON                                  bool
		disks                                           []string
	)
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
			m, err := disko.ParseMode(mode)
			if err != nil {
				return exitcode.Wrap(exitcode.Usage, err)
			}
			l, rep, err := disko.ParseFile(args[0])
			if l == nil && err != nil && rep.Err() == nil {
				return exitcode.Wrap(exitcode.Usage, err)
			}
			for _, d := range disks {
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
			o := disko.ApplyOptions{Mode: m, Options: disko.Options{Root: root, DryRun: dryRun}}
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return exitcode.Wrap(exitcode.Usage, fmt.Errorf("--password-file: %w", err))
				}
				o.Password = logging.Secret(strings.TrimRight(string(b), "\n"))
			}
			if g.Log != nil {
				o.Logf = g.Log.Infof
				o.Event = func(e disko.Event) {
					g.Log.WithField("step", fmt.Sprintf("%d/%d", e.Index, e.Total)).WithField("status", e.Status).Debug(e.Summary)
				}
			}
			o.Plan = func(p *disko.Plan) {
				if !asJSON {
					p.Render(g.Stdout)
				}
			}
			o.Confirm = func(p *disko.Plan) error {
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
			var r config.Report
			r.Merge(rep)
			var (
				p   *disko.Plan
				res *disko.Result
			)
			if l != nil && !rep.HasErrors() {
				p, res, err = disko.Apply(cmd.Context(), l, o, &r)
			} else {
				err = r.Err()
			}
			r.Sort()
			out := struct {
				File     string         `json:"file"`
				Report   []config.Entry `json:"report"`
				Plan     *disko.Plan    `json:"plan,omitempty"`
				Result   *disko.Result  `json:"result,omitempty"`
				Fstab    string         `json:"fstab,omitempty"`
				Crypttab string         `json:"crypttab,omitempty"`
				Error    string         `json:"error,omitempty"`
			}{File: args[0], Report: r.Entries, Plan: p, Result: res}
			if out.Report == nil {
				out.Report = []config.Entry{}
			}
			if !asJSON {
				for _, e := range r.Entries {
					fmt.Fprintf(g.Stderr, "%s: %s\n", args[0], e)
				}
			}
			if err == nil && !dryRun && (fstabOut != "" || crypttabOut != "" || asJSON) && (m.Mount || m.Format) {
				ids := disko.HostIDs(res.Devices)
				if out.Fstab, err = l.Fstab(ids); err == nil {
					out.Crypttab, err = l.Crypttab(ids)
				}
				if err == nil {
					err = writeTable(g, fstabOut, out.Fstab)
				}
				if err == nil {
					err = writeTable(g, crypttabOut, out.Crypttab)
				}
				err = exitcode.Wrap(exitcode.Change, err)
			}
			if asJSON {
				if err != nil {
					out.Error = err.Error()
				}
				enc := json.NewEncoder(g.Stdout)
				enc.SetEscapeHTML(false)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(out); jerr != nil && err == nil {
					err = jerr
				}
			} else if err == nil && dryRun {
				fmt.Fprintf(g.Stdout, "\ndry run: nothing was changed\n")
			} else if err == nil && res != nil {
				fmt.Fprintf(g.Stdout, "\n%d steps done, %d left alone (already there)\n", res.Done, res.Skipped)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "destroy,format,mount", "what to do: destroy, format, mount, unmount, or a combination like format,mount")
	f.StringVar(&root, "root", "/mnt", "where the layout's mountpoints go")
	f.BoolVar(&dryRun, "dry-run", false, "print the plan and every command, change nothing")
	f.BoolVar(&asJSON, "json", false, "print the report, plan and result as JSON")
	f.StringArrayVar(&disks, "disk", nil, "NAME=DEVICE: use DEVICE for the layout's disk NAME (repeatable)")
	f.StringVar(&passwordFile, "password-file", "", "file with the passphrase for LUKS containers that would ask for one")
	f.StringVar(&fstabOut, "fstab", "", "write the installed system's fstab here (- for stdout)")
	f.StringVar(&crypttabOut, "crypttab", "", "write the installed system's crypttab here (- for stdout)")
	return cmd
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
