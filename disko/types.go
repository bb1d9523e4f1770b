package disko

import "github.com/nivis/nivis/internal/config"

// Layout is the value of disko.devices: every top-level device by name.
// Defaults are filled in exactly as disko's Nix modules compute them, so
// labels, priorities and device paths match what disko itself would use.
type Layout struct {
	Disks  map[string]*Disk  `json:"disk,omitempty"`
	MDADM  map[string]*MDADM `json:"mdadm,omitempty"`
	LVMVGs map[string]*LVMVG `json:"lvm_vg,omitempty"`
	Zpools map[string]*Zpool `json:"zpool,omitempty"`
	Nodevs map[string]*Nodev `json:"nodev,omitempty"`

	// Path is the report path of the devices tree ("$" for a bare disko
	// JSON, "$.disko" inside a nivis config).
	Path string `json:"-"`
	// Pos maps report paths to source lines, for checks made later.
	Pos config.Positions `json:"-"`
}

// Hooks are the shell snippets disko runs around each object's phases.
type Hooks struct {
	PreCreate   string `json:"preCreateHook,omitempty"`
	PostCreate  string `json:"postCreateHook,omitempty"`
	PreMount    string `json:"preMountHook,omitempty"`
	PostMount   string `json:"postMountHook,omitempty"`
	PreUnmount  string `json:"preUnmountHook,omitempty"`
	PostUnmount string `json:"postUnmountHook,omitempty"`
}

// Content is what sits on a device: a partition table, a filesystem, a
// LUKS container, a member of a VG/array/pool, swap.
type Content interface {
	// Kind is disko's `type` value ("gpt", "filesystem", "luks", ...).
	Kind() string
	// Where returns the config path and the (symbolic) device the content
	// sits on, as disko computes it.
	Where() (path, device string)
	hooks() *Hooks
}

// node carries what every content has.
type node struct {
	Path   string `json:"-"`
	Device string `json:"device"`
	Hooks  Hooks  `json:"-"`
}

func (n *node) Where() (string, string) { return n.Path, n.Device }
func (n *node) hooks() *Hooks           { return &n.Hooks }

// Disk is one entry of disko.devices.disk.
type Disk struct {
	Key       string  `json:"-"`
	Name      string  `json:"name"`
	Device    string  `json:"device"`
	Destroy   bool    `json:"destroy"`
	ImageSize string  `json:"imageSize,omitempty"`
	Content   Content `json:"-"`
	Path      string  `json:"-"`
	Hooks     Hooks   `json:"-"`
}

// GPT is a GUID partition table (disko type "gpt").
type GPT struct {
	node
	Partitions map[string]*Partition `json:"partitions"`
	// Sorted is the partitions in creation order (priority, then name):
	// a partition's number is its position here, counting from 1.
	Sorted               []*Partition `json:"-"`
	EfiGptPartitionFirst bool         `json:"efiGptPartitionFirst"`
	// ParentType and ParentName build default labels: disk-main-ESP.
	ParentType string `json:"-"`
	ParentName string `json:"-"`
}

// Partition is one GPT partition.
type Partition struct {
	Key        string  `json:"-"`
	Name       string  `json:"name"`
	Label      string  `json:"label"`
	Type       string  `json:"type"` // as written: EF00 or a GUID
	TypeGUID   string  `json:"-"`    // resolved type GUID, upper case
	Size       string  `json:"size"`
	Start      string  `json:"start"`
	End        string  `json:"end"`
	Priority   int     `json:"priority"`
	Alignment  int     `json:"alignment"`
	UUID       string  `json:"uuid,omitempty"`
	Attributes []int   `json:"attributes,omitempty"`
	Device     string  `json:"device"`
	Hybrid     *Hybrid `json:"hybrid,omitempty"`
	Content    Content `json:"-"`
	Index      int     `json:"-"` // 1-based partition number
	Path       string  `json:"-"`
	// DefaultDevice is true when Device was not set in the config: the
	// partition is then found by disk and number, never by a label another
	// disk might share.
	DefaultDevice bool `json:"-"`
}

// Hybrid is an entry for a hybrid MBR.
type Hybrid struct {
	MBRPartitionType string `json:"mbrPartitionType,omitempty"`
	MBRBootableFlag  bool   `json:"mbrBootableFlag"`
}

// Table is disko's legacy partition table (msdos or gpt through parted).
type Table struct {
	node
	Format     string            `json:"format"`
	Partitions []*TablePartition `json:"partitions"`
}

// TablePartition is one partition of a legacy table.
type TablePartition struct {
	PartType string   `json:"part-type"`
	FsType   string   `json:"fs-type,omitempty"`
	Name     string   `json:"name,omitempty"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Flags    []string `json:"flags,omitempty"`
	Bootable bool     `json:"bootable"`
	Content  Content  `json:"-"`
	Index    int      `json:"-"`
	Device   string   `json:"device"`
	Path     string   `json:"-"`
}

// Filesystem is mkfs.<format> on the device.
type Filesystem struct {
	node
	Format       string   `json:"format"`
	ExtraArgs    []string `json:"extraArgs,omitempty"`
	MountOptions []string `json:"mountOptions"`
	Mountpoint   string   `json:"mountpoint,omitempty"`
}

// Btrfs is a btrfs filesystem with subvolumes and swap files.
type Btrfs struct {
	node
	ExtraArgs    []string              `json:"extraArgs,omitempty"`
	MountOptions []string              `json:"mountOptions"`
	Mountpoint   string                `json:"mountpoint,omitempty"`
	Subvolumes   map[string]*Subvolume `json:"subvolumes,omitempty"`
	Swap         map[string]*SwapFile  `json:"swap,omitempty"`
}

// SortedSubvolumes returns the subvolumes by name, parents first.
func (b *Btrfs) SortedSubvolumes() []*Subvolume {
	out := make([]*Subvolume, 0, len(b.Subvolumes))
	for _, k := range sortedKeys(b.Subvolumes) {
		out = append(out, b.Subvolumes[k])
	}
	return out
}

// Subvolume is a btrfs subvolume.
type Subvolume struct {
	Key          string               `json:"-"`
	Name         string               `json:"name"`
	ExtraArgs    []string             `json:"extraArgs,omitempty"`
	MountOptions []string             `json:"mountOptions"`
	Mountpoint   string               `json:"mountpoint,omitempty"`
	Swap         map[string]*SwapFile `json:"swap,omitempty"`
	Path         string               `json:"-"`
	Hooks        Hooks                `json:"-"`
}

// SwapFile is a btrfs swap file (btrfs filesystem mkswapfile).
type SwapFile struct {
	Key           string   `json:"-"`
	Size          string   `json:"size"`
	FilePath      string   `json:"path"` // relative to the subvolume or filesystem
	Priority      *int     `json:"priority,omitempty"`
	DiscardPolicy string   `json:"discardPolicy,omitempty"`
	Options       []string `json:"options"`
	// Mountpoint is the file's absolute path on the installed system, ""
	// when its subvolume is not mounted anywhere.
	Mountpoint string `json:"mountpoint,omitempty"`
	Path       string `json:"-"`
}

// Swap is a swap device.
type Swap struct {
	node
	ExtraArgs        []string `json:"extraArgs,omitempty"`
	DiscardPolicy    string   `json:"discardPolicy,omitempty"`
	MountOptions     []string `json:"mountOptions"`
	Priority         *int     `json:"priority,omitempty"`
	RandomEncryption bool     `json:"randomEncryption"`
	ResumeDevice     bool     `json:"resumeDevice"`
}

// LUKS is a LUKS container opened at /dev/mapper/<name>.
type LUKS struct {
	node
	Name               string         `json:"name"`
	KeyFile            string         `json:"keyFile,omitempty"` // deprecated in disko
	PasswordFile       string         `json:"passwordFile,omitempty"`
	AskPassword        bool           `json:"askPassword"`
	Settings           map[string]any `json:"settings,omitempty"`
	AdditionalKeyFiles []string       `json:"additionalKeyFiles,omitempty"`
	InitrdUnlock       bool           `json:"initrdUnlock"`
	ExtraFormatArgs    []string       `json:"extraFormatArgs,omitempty"`
	ExtraOpenArgs      []string       `json:"extraOpenArgs,omitempty"`
	Content            Content        `json:"-"`
}

// MapperDevice is where the opened container appears.
func (l *LUKS) MapperDevice() string { return "/dev/mapper/" + l.Name }

// SettingsKeyFile returns settings.keyFile, or "".
func (l *LUKS) SettingsKeyFile() string {
	s, _ := l.Settings["keyFile"].(string)
	return s
}

// LVMPV makes the device an LVM physical volume of VG.
type LVMPV struct {
	node
	VG string `json:"vg"`
}

// MDRaid makes the device a member of the mdadm array Name.
type MDRaid struct {
	node
	Name string `json:"name"`
}

// ZFS makes the device a member of zpool Pool.
type ZFS struct {
	node
	Pool string `json:"pool"`
}

// BcachefsMember makes the device part of a bcachefs filesystem.
type BcachefsMember struct {
	node
	Filesystem string `json:"filesystem"`
	Label      string `json:"label,omitempty"`
}

// MDADM is an md array at /dev/md/<name>.
type MDADM struct {
	Key      string  `json:"-"`
	Name     string  `json:"name"`
	Level    int     `json:"level"`
	Metadata string  `json:"metadata"`
	Content  Content `json:"-"`
	Path     string  `json:"-"`
	Hooks    Hooks   `json:"-"`
}

// Device is where the array appears.
func (m *MDADM) Device() string { return "/dev/md/" + m.Name }

// LVMVG is an LVM volume group.
type LVMVG struct {
	Key   string         `json:"-"`
	Name  string         `json:"name"`
	LVs   map[string]*LV `json:"lvs"`
	Path  string         `json:"-"`
	Hooks Hooks          `json:"-"`
}

// SortedLVs returns the LVs in creation order (priority, then name).
func (v *LVMVG) SortedLVs() []*LV {
	out := make([]*LV, 0, len(v.LVs))
	for _, k := range sortedKeys(v.LVs) {
		out = append(out, v.LVs[k])
	}
	stableSort(out, func(a, b *LV) bool { return a.Priority < b.Priority })
	return out
}

// LV is a logical volume at /dev/<vg>/<lv>.
type LV struct {
	Key       string   `json:"-"`
	Name      string   `json:"name"`
	Size      string   `json:"size"`
	LVMType   string   `json:"lvm_type,omitempty"`
	ExtraArgs []string `json:"extraArgs,omitempty"`
	Pool      string   `json:"pool,omitempty"`
	Priority  int      `json:"priority"`
	Content   Content  `json:"-"`
	Device    string   `json:"device"`
	Path      string   `json:"-"`
}

// Zpool is a ZFS pool; nivis accepts it only where the host has zpool.
type Zpool struct {
	Key        string         `json:"-"`
	Name       string         `json:"name"`
	Mountpoint string         `json:"mountpoint,omitempty"`
	Raw        map[string]any `json:"-"`
	Path       string         `json:"-"`
	Hooks      Hooks          `json:"-"`
}

// Nodev is a filesystem without a device (tmpfs).
type Nodev struct {
	Key          string   `json:"-"`
	FSType       string   `json:"fsType"`
	Device       string   `json:"device"`
	Mountpoint   string   `json:"mountpoint,omitempty"`
	MountOptions []string `json:"mountOptions"`
	Path         string   `json:"-"`
	Hooks        Hooks    `json:"-"`
}

func (*GPT) Kind() string            { return "gpt" }
func (*Table) Kind() string          { return "table" }
func (*Filesystem) Kind() string     { return "filesystem" }
func (*Btrfs) Kind() string          { return "btrfs" }
func (*Swap) Kind() string           { return "swap" }
func (*LUKS) Kind() string           { return "luks" }
func (*LVMPV) Kind() string          { return "lvm_pv" }
func (*MDRaid) Kind() string         { return "mdraid" }
func (*ZFS) Kind() string            { return "zfs" }
func (*BcachefsMember) Kind() string { return "bcachefs" }
