package disko

// Operation kinds. Each is one step the executor knows how to do and undo
// nothing about: the plan is the whole truth of what will happen.
const (
	OpUnmountAll   = "unmount-all"   // unmount everything below the root, swapoff files there
	OpDeactivate   = "deactivate"    // swapoff/umount/close what sits on a disk
	OpWipe         = "wipe"          // wipefs every signature, zero the GPT areas
	OpHook         = "hook"          // a pre/post hook from the layout (sh -c)
	OpGPT          = "gpt"           // write the partition table, tell the kernel (BLKPG)
	OpHybridMBR    = "hybrid-mbr"    // sgdisk -h, sfdisk --label-nested dos
	OpParted       = "parted"        // legacy table through parted
	OpMkfs         = "mkfs"          // mkfs.<format>
	OpMkswap       = "mkswap"        // mkswap
	OpLuksFormat   = "luks-format"   // cryptsetup luksFormat
	OpLuksOpen     = "luks-open"     // cryptsetup open
	OpLuksAddKey   = "luks-add-key"  // cryptsetup luksAddKey
	OpLuksClose    = "luks-close"    // cryptsetup close
	OpPVCreate     = "pvcreate"      // lvm pvcreate
	OpVGCreate     = "vgcreate"      // lvm vgcreate
	OpLVCreate     = "lvcreate"      // lvm lvcreate
	OpVGActivate   = "vg-activate"   // lvm vgchange -a y
	OpVGDeactivate = "vg-deactivate" // lvm vgchange -a n
	OpMdadmCreate  = "mdadm-create"  // mdadm --create
	OpSubvolume    = "btrfs-subvolume"
	OpSwapfile     = "btrfs-swapfile"
	OpMount        = "mount"   // mount(2), creating the mountpoint
	OpUmount       = "umount"  // umount(2)
	OpSwapon       = "swapon"  // swapon(2)
	OpSwapoff      = "swapoff" // swapoff(2)
)

// Phases, in the order they run.
const (
	PhaseUnmount = "unmount"
	PhaseDestroy = "destroy"
	PhaseFormat  = "format"
	PhaseMount   = "mount"
)

// Op is one typed operation. Device is the layout's (symbolic) name for
// the device; the executor resolves it when the op runs, because many
// devices only exist once earlier ops have run.
type Op struct {
	Op       string `json:"op"`
	Phase    string `json:"phase"`
	Object   string `json:"object"`         // report path of the layout object
	Disk     string `json:"disk,omitempty"` // disk key, for the tree view
	Device   string `json:"device,omitempty"`
	Summary  string `json:"summary"`
	Destroys bool   `json:"destroys,omitempty"`
	// Skip is set when the current state shows the object is already
	// there: format leaves it alone. The executor checks again.
	Skip string `json:"skip,omitempty"`
	// Argv is the external command, with the symbolic device; empty for
	// operations done in Go (GPT, mount, swapon).
	Argv []string `json:"argv,omitempty"`

	Name       string            `json:"name,omitempty"`
	Format     string            `json:"format,omitempty"`
	Args       []string          `json:"args,omitempty"`
	Members    []string          `json:"members,omitempty"`
	Mountpoint string            `json:"mountpoint,omitempty"`
	Options    []string          `json:"options,omitempty"`
	Size       string            `json:"size,omitempty"`
	Level      *int              `json:"level,omitempty"`
	Metadata   string            `json:"metadata,omitempty"`
	VG         string            `json:"vg,omitempty"`
	LVMType    string            `json:"lvmType,omitempty"`
	Pool       string            `json:"pool,omitempty"`
	Priority   *int              `json:"priority,omitempty"`
	Discard    string            `json:"discard,omitempty"`
	Subvolume  string            `json:"subvolume,omitempty"`
	FilePath   string            `json:"filePath,omitempty"`
	Script     string            `json:"script,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Partitions []PartSpec        `json:"partitions,omitempty"`
	Key        *KeySpec          `json:"key,omitempty"`
	Commands   [][]string        `json:"commands,omitempty"`
	// PartIndex is set on ops whose device is partition N of Disk.
	PartIndex int `json:"partIndex,omitempty"`
}

// PartSpec is one partition of a GPT op.
type PartSpec struct {
	Index      int    `json:"index"`
	Key        string `json:"key"`
	Device     string `json:"device"` // the partition as the layout names it
	Label      string `json:"label"`
	TypeGUID   string `json:"typeGUID"`
	UUID       string `json:"uuid,omitempty"`
	Attributes uint64 `json:"attributes,omitempty"`
	Start      string `json:"start"`
	End        string `json:"end"`
	Alignment  int    `json:"alignment,omitempty"`
	// StartSector and EndSector are filled when the disk size is known.
	StartSector uint64 `json:"startSector,omitempty"`
	EndSector   uint64 `json:"endSector,omitempty"`
}

// KeySpec is how cryptsetup gets its key.
type KeySpec struct {
	KeyFile          string   `json:"keyFile,omitempty"`
	PasswordFile     string   `json:"passwordFile,omitempty"`
	AskPassword      bool     `json:"askPassword,omitempty"`
	KeyFileSize      *int     `json:"keyFileSize,omitempty"`
	KeyFileOffset    *int     `json:"keyFileOffset,omitempty"`
	AllowDiscards    bool     `json:"allowDiscards,omitempty"`
	BypassWorkqueues bool     `json:"bypassWorkqueues,omitempty"`
	ExtraFormatArgs  []string `json:"extraFormatArgs,omitempty"`
	ExtraOpenArgs    []string `json:"extraOpenArgs,omitempty"`
	NewKeyFile       string   `json:"newKeyFile,omitempty"`
}
