package disko

import (
	"fmt"
	"path"
	"strings"
)

// ToolArgv is the external command an op runs on dev, the same for the
// printed plan (with the layout's device name) and for execution (with
// the resolved node). Ops done in Go return nil.
func (op *Op) ToolArgv(dev string) []string {
	switch op.Op {
	case OpMkfs:
		if op.Format == "btrfs" {
			// disko: mkfs.btrfs "$device" "${extraArgs[@]}"
			return append([]string{"mkfs.btrfs", dev}, op.Args...)
		}
		return append(append([]string{"mkfs." + op.Format}, op.Args...), dev)
	case OpMkswap:
		return append(append([]string{"mkswap"}, op.Args...), dev)
	case OpLuksFormat:
		argv := append([]string{"cryptsetup", "-q", "luksFormat", dev}, op.Key.ExtraFormatArgs...)
		return append(argv, keyArgs(op.Key)...)
	case OpLuksOpen:
		argv := []string{"cryptsetup", "open", dev, op.Name}
		if op.Key.AllowDiscards {
			argv = append(argv, "--allow-discards")
		}
		if op.Key.BypassWorkqueues {
			argv = append(argv, "--perf-no_read_workqueue", "--perf-no_write_workqueue")
		}
		argv = append(argv, op.Key.ExtraOpenArgs...)
		argv = append(argv, keyArgs(op.Key)...)
		if op.Phase == PhaseFormat && (op.Key.AllowDiscards || op.Key.BypassWorkqueues) {
			argv = append(argv, "--persistent") // keep the flags in the LUKS2 header
		}
		return argv
	case OpLuksAddKey:
		return append([]string{"cryptsetup", "luksAddKey", dev, op.Key.NewKeyFile}, keyArgs(op.Key)...)
	case OpLuksClose:
		return []string{"cryptsetup", "close", op.Name}
	case OpPVCreate:
		return []string{"lvm", "pvcreate", dev}
	case OpVGCreate:
		return append([]string{"lvm", "vgcreate", op.Name}, op.Members...)
	case OpLVCreate:
		argv := []string{"lvm", "lvcreate", "--yes"}
		switch {
		case op.LVMType == "thinlv":
			argv = append(argv, "-V", op.Size)
		case strings.Contains(op.Size, "%"):
			// A bare percentage (disko's "100%") means of what is left:
			// older LVM (Debian 12's 2.03.16) rejects it without a suffix.
			size := op.Size
			if strings.HasSuffix(size, "%") {
				size += "FREE"
			}
			argv = append(argv, "-l", size)
		default:
			argv = append(argv, "-L", op.Size)
		}
		argv = append(argv, "-n", op.Name)
		if op.LVMType == "thinlv" {
			argv = append(argv, "--thinpool="+op.Pool)
		} else if op.LVMType != "" {
			argv = append(argv, "--type="+op.LVMType)
		}
		return append(append(argv, op.Args...), op.VG)
	case OpVGActivate:
		return []string{"lvm", "vgchange", "-a", "y", op.VG}
	case OpVGDeactivate:
		return []string{"lvm", "vgchange", "-a", "n", op.VG}
	case OpMdadmCreate:
		lvl := 1
		if op.Level != nil {
			lvl = *op.Level
		}
		argv := []string{"mdadm", "--create", "/dev/md/" + op.Name, fmt.Sprintf("--level=%d", lvl),
			fmt.Sprintf("--raid-devices=%d", len(op.Members)), "--metadata=" + op.Metadata, "--force", "--homehost=any"}
		return append(argv, op.Members...)
	case OpSubvolume:
		return append([]string{"btrfs", "subvolume", "create", path.Join("<top of "+dev+">", op.Subvolume)}, op.Args...)
	case OpSwapfile:
		return []string{"btrfs", "filesystem", "mkswapfile", "--size", op.Size, path.Join("<top of "+dev+">", op.Subvolume, op.FilePath)}
	case OpWipe:
		return []string{"wipefs", "-a", "-f", dev}
	}
	return nil
}

// keyArgs are the --key-file arguments; "-" means the key comes on stdin
// (a password file or an asked password), never on the command line.
func keyArgs(k *KeySpec) []string {
	if k == nil {
		return nil
	}
	var out []string
	switch {
	case k.KeyFile != "":
		out = append(out, "--key-file", k.KeyFile)
	case k.PasswordFile != "" || k.AskPassword:
		out = append(out, "--key-file", "-")
	}
	if k.KeyFileSize != nil {
		out = append(out, "--keyfile-size", fmt.Sprint(*k.KeyFileSize))
	}
	if k.KeyFileOffset != nil {
		out = append(out, "--keyfile-offset", fmt.Sprint(*k.KeyFileOffset))
	}
	return out
}

// splitArgs splits list elements the way disko's `toString list` does
// when it lands unquoted in its script: "--pbkdf argon2id" is two
// arguments. Quotes group words, as the shell would.
func splitArgs(in []string) []string {
	var out []string
	for _, s := range in {
		out = append(out, shellWords(s)...)
	}
	return out
}

func shellWords(s string) []string {
	var (
		out   []string
		cur   strings.Builder
		inTok bool
		quote byte
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' && i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inTok = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inTok = true
		case c == ' ' || c == '\t' || c == '\n':
			if inTok {
				out = append(out, cur.String())
				cur.Reset()
				inTok = false
			}
		default:
			cur.WriteByte(c)
			inTok = true
		}
	}
	if inTok {
		out = append(out, cur.String())
	}
	return out
}
