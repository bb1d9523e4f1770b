package disko

import (
	"fmt"
	"strings"
)

// IDs answers what fstab and crypttab need to name devices in a way that
// survives reboots: filesystem, swap and LUKS UUIDs, and partition UUIDs.
// The device argument is the layout's name for the device.
type IDs interface {
	UUID(device string) (string, error)
	PartUUID(device string) (string, error)
}

// StaticIDs is IDs from maps, for tests and for callers that already
// probed the devices.
type StaticIDs struct {
	UUIDs     map[string]string
	PartUUIDs map[string]string
}

// UUID implements IDs.
func (s StaticIDs) UUID(dev string) (string, error) {
	if u := s.UUIDs[dev]; u != "" {
		return u, nil
	}
	return "", fmt.Errorf("no UUID known for %s", dev)
}

// PartUUID implements IDs.
func (s StaticIDs) PartUUID(dev string) (string, error) {
	if u := s.PartUUIDs[dev]; u != "" {
		return u, nil
	}
	return "", fmt.Errorf("no partition UUID known for %s", dev)
}

// fstabEscape escapes a field as fstab(5) wants (spaces are \040).
func fstabEscape(s string) string {
	r := strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`)
	return r.Replace(s)
}

type fstabLine struct {
	src, mp, fstype, opts string
	pass                  int
}

// randomSwapName is the dm name of a randomly encrypted swap.
func randomSwapName(dev string) string {
	base := dev[strings.LastIndex(dev, "/")+1:]
	base = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, UnescapeUdev(base))
	return "cryptswap-" + base
}

// Fstab returns /etc/fstab for the installed system: UUID= for every
// filesystem and swap, subvol= for btrfs subvolumes, tmpfs and other
// nodev mounts as written, swap files by path.
func (l *Layout) Fstab(ids IDs) (string, error) {
	p := &planner{l: l, o: PlanOptions{Root: "/"}}
	order, cycle := l.sortDevices()
	if len(cycle) > 0 {
		return "", fmt.Errorf("devices depend on each other in a cycle: %s", refsString(cycle))
	}
	p.order = order
	mounts, swaps, _, _ := p.collect()
	var lines []fstabLine
	uuidOf := func(dev string) (string, error) {
		u, err := ids.UUID(dev)
		if err != nil {
			return "", fmt.Errorf("fstab: %w", err)
		}
		return "UUID=" + u, nil
	}
	for _, m := range mounts {
		src := m.device
		if m.kind != "nodev" {
			var err error
			if src, err = uuidOf(m.device); err != nil {
				return "", err
			}
		}
		opts := strings.Join(m.options, ",")
		if opts == "" {
			opts = "defaults"
		}
		pass := 0
		switch m.fstype {
		case "ext2", "ext3", "ext4", "vfat", "f2fs":
			pass = 2
			if m.mountpoint == "/" {
				pass = 1
			}
		}
		lines = append(lines, fstabLine{src, m.mountpoint, m.fstype, opts, pass})
	}
	for _, s := range swaps {
		opts := append([]string{}, s.options...)
		if len(opts) == 0 {
			opts = []string{"defaults"}
		}
		if s.priority != nil {
			opts = append(opts, fmt.Sprintf("pri=%d", *s.priority))
		}
		switch s.discard {
		case "both":
			opts = append(opts, "discard")
		case "once", "pages":
			opts = append(opts, "discard="+s.discard)
		}
		src := s.file
		if src == "" {
			var err error
			if src, err = uuidOf(s.device); err != nil {
				return "", err
			}
		}
		lines = append(lines, fstabLine{src, "none", "swap", strings.Join(opts, ","), 0})
	}
	for _, sw := range l.randomSwaps() {
		lines = append(lines, fstabLine{"/dev/mapper/" + randomSwapName(sw.Device), "none", "swap", strings.Join(sw.MountOptions, ","), 0})
	}
	var b strings.Builder
	b.WriteString("# /etc/fstab: written by nivis from the disko layout\n")
	b.WriteString("# <file system> <mount point> <type> <options> <dump> <pass>\n")
	for _, ln := range lines {
		fmt.Fprintf(&b, "%s %s %s %s 0 %d\n", fstabEscape(ln.src), fstabEscape(ln.mp), ln.fstype, fstabEscape(ln.opts), ln.pass)
	}
	return b.String(), nil
}

// randomSwaps lists the swap devices encrypted with a fresh key at boot.
func (l *Layout) randomSwaps() []*Swap {
	var out []*Swap
	order, _ := l.sortDevices()
	for _, d := range order {
		l.walkDevice(d, func(c Content) {
			if s, ok := c.(*Swap); ok && s.RandomEncryption {
				out = append(out, s)
			}
		})
	}
	return out
}

// Crypttab returns /etc/crypttab: every LUKS container unlocked at boot
// (initrdUnlock), by UUID, with its key file or none (ask), and every
// randomly encrypted swap keyed from /dev/urandom by partition UUID.
func (l *Layout) Crypttab(ids IDs) (string, error) {
	var b strings.Builder
	b.WriteString("# /etc/crypttab: written by nivis from the disko layout\n")
	b.WriteString("# <name> <device> <key file> <options>\n")
	order, cycle := l.sortDevices()
	if len(cycle) > 0 {
		return "", fmt.Errorf("devices depend on each other in a cycle: %s", refsString(cycle))
	}
	var err error
	for _, d := range order {
		l.walkDevice(d, func(c Content) {
			x, ok := c.(*LUKS)
			if !ok || !x.InitrdUnlock || err != nil {
				return
			}
			var u string
			if u, err = ids.UUID(x.Device); err != nil {
				err = fmt.Errorf("crypttab: %w", err)
				return
			}
			key := x.SettingsKeyFile()
			if key == "" {
				key = "none"
			}
			k := luksKey(x)
			opts := []string{"luks"}
			if k.AllowDiscards {
				opts = append(opts, "discard")
			}
			if k.KeyFileSize != nil {
				opts = append(opts, fmt.Sprintf("keyfile-size=%d", *k.KeyFileSize))
			}
			if k.KeyFileOffset != nil {
				opts = append(opts, fmt.Sprintf("keyfile-offset=%d", *k.KeyFileOffset))
			}
			fmt.Fprintf(&b, "%s UUID=%s %s %s\n", x.Name, u, key, strings.Join(opts, ","))
		})
	}
	if err != nil {
		return "", err
	}
	for _, sw := range l.randomSwaps() {
		src := sw.Device
		if pu, perr := ids.PartUUID(sw.Device); perr == nil {
			src = "PARTUUID=" + pu
		}
		opts := "swap,cipher=aes-xts-plain64,size=512"
		if sw.DiscardPolicy != "" {
			opts += ",discard"
		}
		fmt.Fprintf(&b, "%s %s /dev/urandom %s\n", randomSwapName(sw.Device), src, opts)
	}
	return b.String(), nil
}

// ResumeDevice returns the device of the swap marked resumeDevice, or "".
func (l *Layout) ResumeDevice() string {
	order, _ := l.sortDevices()
	dev := ""
	for _, d := range order {
		l.walkDevice(d, func(c Content) {
			if s, ok := c.(*Swap); ok && s.ResumeDevice && dev == "" {
				dev = s.Device
			}
		})
	}
	return dev
}
