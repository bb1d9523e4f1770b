package takeover

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/initramfs"
	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/takeover/install"
)

// HostConfig is the config kind "Host": what `nivis install` makes a host.
//
//	apiVersion: nivis/v1alpha1
//	kind: Host
//	hostname: web1
//	disko: {}            # the value of disko.devices
//	system: {source: ./rootfs.tar.zst, format: auto, sha256: ""}
//	bootloader: grub     # grub | systemd-boot | none
//	network: keep        # keep | dhcp
//	rootAuthorizedKeys: []
//	copyHostKeys: false
type HostConfig struct {
	Hostname           string    `yaml:"hostname"`
	Disko              yaml.Node `yaml:"disko"`
	System             System    `yaml:"system"`
	Bootloader         string    `yaml:"bootloader"`
	Network            string    `yaml:"network"`
	RootAuthorizedKeys []string  `yaml:"rootAuthorizedKeys"`
	CopyHostKeys       bool      `yaml:"copyHostKeys"`
	// BootloaderCommand is run in the new system's chroot when
	// bootloader is "custom".
	BootloaderCommand string `yaml:"bootloaderCommand"`
	// Firmware is what GRUB is installed for: auto (what the host booted
	// with), bios, uefi, or both (a disk that boots either way).
	Firmware string `yaml:"firmware"`

	// Layout is the parsed disko tree (nil for a raw image).
	Layout *disko.Layout `yaml:"-"`
	// Dir is the config file's directory (relative sources).
	Dir string `yaml:"-"`
}

// System is where the installed system comes from.
type System struct {
	// Source is a local path (relative to the config) or an https URL.
	Source string `yaml:"source"`
	// Format is auto, tar, oci or raw.
	Format string `yaml:"format"`
	// SHA256 is required for URLs.
	SHA256 string `yaml:"sha256"`
	// Device is the disk a raw image is written to (default: the only
	// disk of the layout).
	Device string `yaml:"device"`
	// CAFile is a PEM file of CA certificates the host trusts, besides
	// its own bundle, when it fetches an https source (a private CA).
	CAFile string `yaml:"caFile"`
}

func init() { config.RegisterKind("Host", func() any { return &HostConfig{} }) }

// Validate checks the config without touching any host.
func (h *HostConfig) Validate(ctx *config.Context) {
	h.Dir = ctx.Dir
	if h.Hostname != "" && (len(h.Hostname) > 63 || strings.ContainsAny(h.Hostname, " \t\n/")) {
		ctx.Errorf("$.hostname", "invalid hostname %q: letters, digits, '-' and '.', at most 63 characters", h.Hostname)
	}
	if h.Bootloader == "" {
		h.Bootloader = "grub"
	}
	switch h.Bootloader {
	case "grub", "systemd-boot", "none":
	case "custom":
		if h.BootloaderCommand == "" {
			ctx.Errorf("$.bootloaderCommand", "bootloader custom needs bootloaderCommand (run in a chroot of the new system)")
		}
	default:
		ctx.Errorf("$.bootloader", "unknown bootloader %q; one of grub, systemd-boot, none, custom", h.Bootloader)
	}
	switch h.Firmware {
	case "", "auto":
		h.Firmware = "auto"
	case "bios", "uefi", "both":
	default:
		ctx.Errorf("$.firmware", "unknown firmware %q; one of auto, bios, uefi, both", h.Firmware)
	}
	if h.Network == "" {
		h.Network = "keep"
	}
	if h.Network != "keep" && h.Network != "dhcp" {
		ctx.Errorf("$.network", "unknown network %q; one of keep (the addresses and routes the host has now), dhcp", h.Network)
	}
	if h.System.Format == "" {
		h.System.Format = "auto"
	}
	switch h.System.Format {
	case "auto", "tar", "oci", "raw":
	default:
		ctx.Errorf("$.system.format", "unknown format %q; one of auto, tar, oci, raw", h.System.Format)
	}
	src := h.System.Source
	switch {
	case src == "":
		ctx.Errorf("$.system.source", "missing system.source: a rootfs tarball, an OCI image or a raw disk image (a path or an https URL)")
	case strings.HasPrefix(src, "http://"):
		ctx.Errorf("$.system.source", "plain http is not accepted: use https (with sha256)")
	case strings.HasPrefix(src, "https://"):
		if len(h.System.SHA256) != 64 {
			ctx.Errorf("$.system.sha256", "system.sha256 (64 hex digits) is required for a URL source")
		}
		if h.System.CAFile != "" {
			b, err := os.ReadFile(ctx.Resolve(h.System.CAFile))
			if err != nil {
				ctx.Errorf("$.system.caFile", "system.caFile: %v", err)
			} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
				ctx.Errorf("$.system.caFile", "system.caFile %s holds no PEM certificate", h.System.CAFile)
			}
		}
	default:
		if _, err := os.Stat(ctx.Resolve(src)); err != nil {
			ctx.Errorf("$.system.source", "system.source: %v", err)
		} else if h.System.Format == "auto" {
			k, err := detectFormat(ctx.Resolve(src))
			if err != nil {
				ctx.Errorf("$.system.source", "system.source %s: %v", src, err)
			} else {
				h.System.Format = k
			}
		}
	}
	for i, k := range h.RootAuthorizedKeys {
		if f := strings.Fields(k); len(f) < 2 || !strings.HasPrefix(f[0], "ssh-") && !strings.HasPrefix(f[0], "ecdsa-") && !strings.HasPrefix(f[0], "sk-") {
			ctx.Errorf(config.Index("$.rootAuthorizedKeys", i), "not an authorized_keys line (want \"ssh-ed25519 AAAA... comment\")")
		}
	}
	if h.Disko.Kind == 0 {
		if h.System.Format != "raw" {
			ctx.Errorf("$.disko", "missing disko: the disk layout to create (only a raw image needs none)")
		}
		return
	}
	h.Layout = disko.Parse(&h.Disko, "$.disko", ctx.Report, ctx.Pos)
	if h.Layout != nil {
		h.Layout.Validate(ctx.Report, nil, disko.Mode{})
	}
}

// LayoutJSON is the disko tree as JSON, for the agent's disko verb.
func (h *HostConfig) LayoutJSON() (json.RawMessage, error) {
	var v any
	if err := h.Disko.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// Features are the filesystems and block layers the layout uses: they
// decide which kernel modules and tools the rescue image carries.
func (h *HostConfig) Features() []string {
	var v any
	if h.Disko.Kind == 0 || h.Disko.Decode(&v) != nil {
		return nil
	}
	set := map[string]bool{}
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			for k, val := range t {
				if s, ok := val.(string); ok {
					switch {
					case k == "format":
						set[s] = true
					case k == "type" && s == "luks":
						set["luks"] = true
					case k == "type" && (s == "lvm_pv" || s == "lvm_vg"):
						set["lvm"] = true
					case k == "type" && (s == "mdraid" || s == "mdadm"):
						set["mdadm"] = true
					case k == "type" && s == "swap":
						set["swap"] = true
					case k == "type" && s == "btrfs":
						set["btrfs"] = true
					}
				}
				if k == "lvm_vg" {
					if m, ok := val.(map[string]any); ok && len(m) > 0 {
						set["lvm"] = true
					}
				}
				if k == "mdadm" {
					if m, ok := val.(map[string]any); ok && len(m) > 0 {
						set["mdadm"] = true
					}
				}
				walk(val)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	var out []string
	for f := range set {
		if initramfs.IsFeature(f) {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// detectFormat tells what a local source holds, for format: auto: an OCI
// layout directory, or a file whose (decompressed) first bytes are a tar,
// an image archive or a disk image.
func detectFormat(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, "oci-layout")); err != nil {
			return "", fmt.Errorf("a directory source must be an OCI image layout (with an oci-layout file)")
		}
		return install.FormatOCI, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s, err := install.OpenSource(f, install.FormatAuto)
	if err != nil {
		return "", err
	}
	defer s.Close()
	return string(s.Kind), nil
}
