package sysmgr

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nivis/nivis/internal/config"
)

// InventoryKind is `kind: Inventory`: the hosts of a fleet.
const InventoryKind = "Inventory"

// Inventory lists hosts, each with the Services config it gets.
type Inventory struct {
	// Config is the Services file for hosts that name none.
	Config string          `yaml:"config" json:"config,omitempty"`
	Hosts  []InventoryHost `yaml:"hosts" json:"hosts"`
}

// InventoryHost is one host of a fleet.
type InventoryHost struct {
	Name string `yaml:"name" json:"name"`
	// Target is [user@]host[:port] or an ssh_config alias (default: Name).
	Target string   `yaml:"target" json:"target,omitempty"`
	Tags   []string `yaml:"tags" json:"tags,omitempty"`
	Config string   `yaml:"config" json:"config,omitempty"`
}

// Validate checks names, targets and configs.
func (inv *Inventory) Validate(ctx *config.Context) {
	if len(inv.Hosts) == 0 {
		ctx.Errorf("$.hosts", "an inventory lists at least one host")
	}
	if inv.Config != "" {
		if _, err := os.Stat(ctx.Resolve(inv.Config)); err != nil {
			ctx.Errorf("$.config", "cannot read config: %v", err)
		}
	}
	seen := map[string]int{}
	for i, h := range inv.Hosts {
		at := config.Index("$.hosts", i)
		switch {
		case h.Name == "":
			ctx.Errorf(at, "a host needs a name")
		case strings.ContainsAny(h.Name, ",@ "):
			ctx.Errorf(at+".name", "host name %q: no commas, spaces or '@' (they select hosts in --on)", h.Name)
		}
		if j, dup := seen[h.Name]; dup && h.Name != "" {
			ctx.Errorf(at+".name", "host %q is also listed at $.hosts[%d]", h.Name, j)
		}
		seen[h.Name] = i
		for k, t := range h.Tags {
			if t == "" || strings.ContainsAny(t, ",@ ") {
				ctx.Errorf(config.Index(at+".tags", k), "tag %q: no commas, spaces or '@'", t)
			}
		}
		switch {
		case h.Config != "":
			if _, err := os.Stat(ctx.Resolve(h.Config)); err != nil {
				ctx.Errorf(at+".config", "cannot read config: %v", err)
			}
		case inv.Config == "":
			ctx.Errorf(at, "host %q has no config and the inventory has no default config", h.Name)
		}
	}
}

// LoadInventory reads an inventory; host configs come back absolute and
// targets default to names.
func LoadInventory(file string) ([]InventoryHost, config.Report, error) {
	l, rep, err := config.LoadKind(file, InventoryKind)
	if err != nil {
		return nil, rep, err
	}
	inv := l.Obj.(*Inventory)
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(l.Dir, p)
	}
	var out []InventoryHost
	for _, h := range inv.Hosts {
		if h.Target == "" {
			h.Target = h.Name
		}
		if h.Config == "" {
			h.Config = inv.Config
		}
		h.Config = resolve(h.Config)
		out = append(out, h)
	}
	return out, rep, nil
}

// SelectHosts picks hosts by a colmena-style --on: comma-separated names,
// @tags and shell globs; empty selects all. A term that matches nothing is
// an error, so a typo never silently deploys to fewer hosts.
func SelectHosts(hosts []InventoryHost, on string) ([]InventoryHost, error) {
	if strings.TrimSpace(on) == "" {
		return hosts, nil
	}
	picked := map[string]bool{}
	for _, term := range strings.Split(on, ",") {
		term = strings.TrimSpace(term)
		if term == "" {
			continue
		}
		n := 0
		for _, h := range hosts {
			ok := false
			if tag, isTag := strings.CutPrefix(term, "@"); isTag {
				for _, t := range h.Tags {
					if m, _ := path.Match(tag, t); m {
						ok = true
					}
				}
			} else if m, err := path.Match(term, h.Name); err != nil {
				return nil, fmt.Errorf("--on %q: %w", term, err)
			} else {
				ok = m
			}
			if ok {
				picked[h.Name] = true
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("--on %q matches no host in the inventory", term)
		}
	}
	var out []InventoryHost
	for _, h := range hosts {
		if picked[h.Name] {
			out = append(out, h)
		}
	}
	return out, nil
}
