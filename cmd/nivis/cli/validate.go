package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
)

func newValidateCmd(g *Globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check nivis config files and print every problem with its path and line",
		Long: `validate reads each config (YAML or JSON, apiVersion: nivis/v1alpha1) and prints
a report: errors (which block) and warnings such as unknown keys (which do not).
It exits 2 when any file has an error. Nothing on any host is touched.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runValidate(g, args, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the reports as JSON")
	return cmd
}

// runValidate is `nivis validate FILE...`.
func runValidate(g *Globals, args []string, asJSON bool) error {
	failed := 0
	type fileReport struct {
		File    string         `json:"file"`
		Kind    string         `json:"kind,omitempty"`
		Valid   bool           `json:"valid"`
		Entries []config.Entry `json:"entries"`
	}
	var all []fileReport
	for _, f := range args {
		l, rep, err := config.Load(f)
		if err != nil && rep.Err() == nil {
			return exitcode.Wrap(exitcode.Usage, err)
		}
		fr := fileReport{File: f, Valid: !rep.HasErrors(), Entries: rep.Entries}
		if fr.Entries == nil {
			fr.Entries = []config.Entry{}
		}
		if l != nil {
			fr.Kind = l.Kind
		}
		all = append(all, fr)
		if rep.HasErrors() {
			failed++
		}
		if asJSON {
			continue
		}
		for _, e := range rep.Entries {
			fmt.Fprintf(g.Stdout, "%s: %s\n", f, e)
		}
		if !rep.HasErrors() {
			fmt.Fprintf(g.Stdout, "%s: valid %s config (%d warnings)\n", f, fr.Kind, len(rep.Entries))
		}
	}
	if asJSON {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(all); err != nil {
			return err
		}
	}
	if failed > 0 {
		return exitcode.Errorf(exitcode.Usage, "%d of %d config files have errors", failed, len(args))
	}
	return nil
}
