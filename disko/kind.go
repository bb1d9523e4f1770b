package disko

import (
	"gopkg.in/yaml.v3"

	"github.com/nivis/nivis/internal/config"
)

// Config is the nivis config kind "Disko": a disko layout on its own,
//
//	apiVersion: nivis/v1alpha1
//	kind: Disko
//	disko: { disk: {...}, lvm_vg: {...}, ... }
//
// Other kinds (Host) embed the same `disko:` tree and call Parse on it.
type Config struct {
	Disko  yaml.Node `yaml:"disko"`
	Layout *Layout   `yaml:"-"`
}

func init() {
	config.RegisterKind("Disko", func() any { return &Config{} })
}

// Validate parses and checks the layout. It does not look at the host
// (nivis validate may run on a laptop); nivis disko checks the host.
func (c *Config) Validate(ctx *config.Context) {
	if c.Disko.Kind == 0 {
		ctx.Errorf("$.disko", "missing disko: the layout (disk, mdadm, lvm_vg, zpool, nodev)")
		return
	}
	c.Layout = Parse(&c.Disko, "$.disko", ctx.Report, ctx.Pos)
	if c.Layout != nil {
		c.Layout.Validate(ctx.Report, nil, Mode{})
	}
}
