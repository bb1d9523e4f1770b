package disko

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var (
	// disko's partition size type: "100%" or [0-9]+[KMGTP]?.
	partSizeRE = regexp.MustCompile(`^(100%|[0-9]+[KMGTP]?)$`)
	// sgdisk positions: [+-]N[KMGTPE], N in sectors without a suffix.
	positionRE = regexp.MustCompile(`^[+-]?[0-9]+([KMGTPEkmgtpe]|s)?$`)
	// lvcreate -L sizes and -l extents.
	lvmSizeRE    = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[bBsSkKmMgGtTpPeE]?$`)
	lvmExtentsRE = regexp.MustCompile(`^[0-9]+%(VG|FREE|PVS|ORIGIN)?$`)
	// btrfs swap file sizes.
	swapFileSizeRE = regexp.MustCompile(`^[0-9]+[KMGTP]$`)
)

// position is a parsed sgdisk start/end value.
type position struct {
	sign   byte   // 0, '+' or '-'
	n      uint64 // the number as written
	suffix byte   // 0 for sectors, or K M G T P E
}

func parsePosition(s string) (position, error) {
	if !positionRE.MatchString(s) {
		return position{}, fmt.Errorf("%q is not an sgdisk position (like 0, 1M, +512M, -1G, -0)", s)
	}
	var p position
	if s[0] == '+' || s[0] == '-' {
		p.sign = s[0]
		s = s[1:]
	}
	last := s[len(s)-1]
	if last < '0' || last > '9' {
		if last != 's' {
			p.suffix = upper(last)
		}
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return position{}, fmt.Errorf("%q: number out of range", s)
	}
	p.n = n
	return p, nil
}

func upper(b byte) byte {
	if b >= 'a' && b <= 'z' {
		return b - 'a' + 'A'
	}
	return b
}

// sectors converts the number to sectors of sectorSize bytes, as sgdisk's
// IeeeToInt does (a bare number is already sectors).
func (p position) sectors(sectorSize uint64) (uint64, bool) {
	if p.suffix == 0 {
		return p.n, true
	}
	idx := strings.IndexByte("KMGTPE", p.suffix)
	unit := uint64(1) << (10 * uint(idx+1))
	if unit >= sectorSize {
		mult := unit / sectorSize
		if p.n > 0 && mult > ^uint64(0)/p.n {
			return 0, false
		}
		return p.n * mult, true
	}
	return p.n / (sectorSize / unit), true
}

// HumanBytes prints a byte count the way lsblk does: 500M, 7.5G.
func HumanBytes(n int64) string {
	if n < 0 {
		return "?"
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d %s", int64(f), units[i])
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
