package disko

import (
	"fmt"
	"sort"
)

// span is an inclusive range of sectors.
type span struct{ start, end uint64 }

// Geometry places partitions the way `sgdisk --align-end --new=N:S:E`
// does (gdisk 1.0.x: FindFirstInLargest, Align, FindLastInFree,
// IeeeToInt), so a layout lands on the same sectors as with disko.
type Geometry struct {
	sectorSize  uint64
	firstUsable uint64
	lastUsable  uint64
	used        []span
}

// NewGeometry describes an empty GPT disk of size bytes with 128 entries.
func NewGeometry(size, sectorSize int64) (*Geometry, error) {
	if sectorSize <= 0 {
		sectorSize = 512
	}
	ss := uint64(sectorSize)
	total := uint64(size) / ss
	arr := (128*128 + ss - 1) / ss
	if size <= 0 || total < 2*(arr+2)+1 {
		return nil, fmt.Errorf("disk of %d bytes is too small for a GPT", size)
	}
	return &Geometry{sectorSize: ss, firstUsable: 2 + arr, lastUsable: total - 2 - arr}, nil
}

// defaultAlignment is sgdisk's: 1 MiB worth of sectors.
func (g *Geometry) defaultAlignment() uint64 {
	a := (1 << 20) / g.sectorSize
	if a == 0 {
		return 1
	}
	return a
}

func (g *Geometry) isFree(s uint64) bool {
	if s < g.firstUsable || s > g.lastUsable {
		return false
	}
	for _, u := range g.used {
		if s >= u.start && s <= u.end {
			return false
		}
	}
	return true
}

// firstAvailable is the first free sector at or after start, 0 if none.
func (g *Geometry) firstAvailable(start uint64) uint64 {
	s := start
	if s < g.firstUsable {
		s = g.firstUsable
	}
	for s <= g.lastUsable {
		moved := false
		for _, u := range g.used {
			if s >= u.start && s <= u.end {
				s = u.end + 1
				moved = true
			}
		}
		if !moved {
			return s
		}
	}
	return 0
}

// lastInFree is the last sector of the free run that contains start;
// with alignEnd it is pulled back so that the partition ends on an
// alignment boundary, as sgdisk --align-end does.
func (g *Geometry) lastInFree(start uint64, align uint64, alignEnd bool) uint64 {
	nearest := g.lastUsable
	for _, u := range g.used {
		if nearest > u.start && u.start > start {
			nearest = u.start - 1
		}
	}
	if alignEnd && align > 1 {
		plus := nearest + 1
		if plus%align != 0 {
			nearest = plus - plus%align - 1
		}
	}
	return nearest
}

func (g *Geometry) firstInLargest() uint64 {
	var best, bestSize uint64
	start := uint64(0)
	for {
		first := g.firstAvailable(start)
		if first == 0 {
			break
		}
		last := g.lastInFree(first, 1, false)
		if size := last - first + 1; size > bestSize {
			best, bestSize = first, size
		}
		start = last + 1
		if start > g.lastUsable {
			break
		}
	}
	return best
}

// rangeFree reports whether every sector in [a, b] is usable and free.
func (g *Geometry) rangeFree(a, b uint64) bool {
	if a > b {
		return true
	}
	if a < g.firstUsable || b > g.lastUsable {
		return false
	}
	for _, u := range g.used {
		if u.start <= b && u.end >= a {
			return false
		}
	}
	return true
}

// alignSector moves s to an alignment boundary: back if every sector in
// between is free, else forward (gdisk's GPTData::Align).
func (g *Geometry) alignSector(s, align uint64) uint64 {
	if align <= 1 || s%align == 0 {
		return s
	}
	earlier := s / align * align
	if earlier >= g.firstUsable && g.rangeFree(earlier, s-1) {
		return earlier
	}
	later := earlier + align
	if later > earlier && later <= g.lastUsable && g.rangeFree(s+1, later) {
		return later
	}
	return s
}

// ieee converts an sgdisk position to a sector like IeeeToInt: 0 means
// the default, +N counts from low (for the end) or from the default (for
// the start), -N counts back from high.
func (g *Geometry) ieee(p position, low, high, def uint64) (uint64, bool) {
	n, ok := p.sectors(g.sectorSize)
	if !ok {
		return 0, false
	}
	if n == 0 {
		return def, true
	}
	switch p.sign {
	case '+':
		if def == high {
			return n + low - 1, true
		}
		return n + def, true
	case '-':
		if n > high {
			return 0, false
		}
		return high - n, true
	}
	return n, true
}

// Placed is a partition's final place.
type Placed struct {
	Start, End uint64
}

// Place puts one partition on the disk and marks it used.
func (g *Geometry) Place(startS, endS string, alignment int) (Placed, error) {
	align := uint64(alignment)
	if alignment <= 0 {
		align = g.defaultAlignment()
	}
	sp, err := parsePosition(startS)
	if err != nil {
		return Placed{}, err
	}
	ep, err := parsePosition(endS)
	if err != nil {
		return Placed{}, err
	}
	low := g.firstInLargest()
	if low == 0 {
		return Placed{}, fmt.Errorf("no free space left on the disk")
	}
	low = g.alignSector(low, align)
	high := g.lastInFree(low, align, true)
	start, ok := g.ieee(sp, low, high, low)
	if !ok {
		return Placed{}, fmt.Errorf("start %s is out of range", startS)
	}
	end, ok := g.ieee(ep, start, high, high)
	if !ok {
		return Placed{}, fmt.Errorf("end %s is before the start of the free space", endS)
	}
	start = g.alignSector(start, align)
	switch {
	case !g.isFree(start):
		return Placed{}, fmt.Errorf("start sector %d is not free", start)
	case start > end:
		return Placed{}, fmt.Errorf("end sector %d is before start sector %d (not enough space)", end, start)
	case g.lastInFree(start, 1, false) < end:
		return Placed{}, fmt.Errorf("needs sectors %d..%d but only %d..%d are free", start, end, start, g.lastInFree(start, 1, false))
	}
	g.Use(start, end)
	return Placed{Start: start, End: end}, nil
}

func (g *Geometry) Use(start, end uint64) {
	g.used = append(g.used, span{start, end})
	sort.Slice(g.used, func(i, j int) bool { return g.used[i].start < g.used[j].start })
}
