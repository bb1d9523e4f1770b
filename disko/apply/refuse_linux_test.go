package apply

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/command"
	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
)

// TestBadConfigsLeaveDisksUntouched runs broken layouts against a disk
// with data on it: each must be refused, and the disk image must be
// byte-for-byte what it was.
func TestBadConfigsLeaveDisksUntouched(t *testing.T) {
	requireRoot(t)
	node, img := newLoop(t, 512<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-L", "precious", node).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	before := fileSHA(t, img)
	const head = `{"disk": {"main": {"device": "DEV", "content": {"type": "gpt", "partitions": `
	cases := map[string]struct {
		layout, mode, want string
	}{
		"two 100%":          {head + `{"a": {"size": "100%"}, "b": {"size": "100%"}}}}}}`, "destroy,format,mount", `two partitions take "100%"`},
		"does not fit":      {head + `{"a": {"size": "300M"}, "b": {"size": "300M"}}}}}}`, "destroy,format,mount", "does not fit"},
		"same mountpoint":   {head + `{"a": {"size": "100M", "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/x"}}, "b": {"size": "100M", "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/x/"}}}}}}}`, "destroy,format,mount", "also used by"},
		"missing vg":        {head + `{"a": {"size": "100M", "content": {"type": "lvm_pv", "vg": "nope"}}}}}}}`, "destroy,format,mount", "does not exist"},
		"unknown type":      {head + `{"a": {"size": "100M", "type": "QQQQ"}}}}}}`, "destroy,format,mount", "unknown partition type"},
		"unknown content":   {head + `{"a": {"size": "100M", "content": {"type": "ntfs"}}}}}}}`, "destroy,format,mount", "unknown content type"},
		"missing tool":      {head + `{"a": {"size": "100M", "content": {"type": "filesystem", "format": "nivisfs"}}}}}}}`, "destroy,format", "needs mkfs.nivisfs"},
		"not a gpt":         {head + `{"a": {"size": "100M", "content": {"type": "filesystem", "format": "ext4"}}}}}}}`, "format", "not a GPT"},
		"cycle":             {`{"mdadm": {"a": {"content": {"type": "mdraid", "name": "b"}}, "b": {"content": {"type": "mdraid", "name": "a"}}}, "disk": {"main": {"device": "DEV"}}}`, "format", "cycle"},
		"bad size":          {head + `{"a": {"size": "1.5G"}}}}}}`, "destroy,format,mount", `size "1.5G"`},
		"bad json":          {`{"disk": {"main": {"device": "DEV", `, "destroy,format,mount", "not valid YAML or JSON"},
		"relative device":   {`{"disk": {"main": {"device": "sda"}}}`, "destroy,format", "absolute path"},
		"luks without name": {head + `{"a": {"size": "100M", "content": {"type": "luks"}}}}}}}`, "destroy,format", "luks needs a name"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			l, rep := disko.ParseBytes([]byte(strings.ReplaceAll(c.layout, "DEV", node)))
			var err error
			if l == nil || rep.HasErrors() {
				err = rep.Err()
			} else {
				m, _ := disko.ParseMode(c.mode)
				_, _, err = Run(context.Background(), l, RunOptions{Mode: m, Options: Options{Root: filepath.Join(t.TempDir(), "mnt")}}, &rep)
			}
			if err == nil {
				t.Fatalf("accepted a bad layout")
			}
			msg := err.Error() + "\n" + rep.String()
			if !strings.Contains(msg, c.want) {
				t.Errorf("error does not say %q:\n%s", c.want, msg)
			}
			if code := exitcode.Of(err); code != exitcode.Usage && code != exitcode.Precondition && exitcode.Of(err) != exitcode.Failure {
				t.Errorf("exit code %v for a bad layout", code)
			}
			if after := fileSHA(t, img); after != before {
				t.Fatalf("the disk changed: sha256 %s -> %s", before, after)
			}
		})
	}
}

// rootDisk returns the node of the disk under /, or skips.
func rootDisk(t *testing.T) string {
	t.Helper()
	devs, err := scanBlock()
	if err != nil {
		t.Skip(err)
	}
	for name := range rootDisks(devs) {
		return "/dev/" + name
	}
	t.Skip("/ is not on a block device here (tmpfs, overlay?)")
	return ""
}

func TestRootDiskIsRefused(t *testing.T) {
	disk := rootDisk(t)
	l, rep := disko.ParseBytes([]byte(`{"disk": {"main": {"device": "` + disk + `", "content": {"type": "gpt", "partitions": {"r": {"size": "100%", "content": {"type": "filesystem", "format": "ext4"}}}}}}}`))
	if rep.HasErrors() {
		t.Fatal(rep.String())
	}
	st, err := ProbeState(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Disks[disk].RootDisk {
		t.Fatalf("%s holds / but the probe does not say so", disk)
	}
	for _, mode := range []disko.Mode{{Format: true}, {Destroy: true, Format: true, Mount: true}, {Destroy: true}} {
		var r config.Report
		_, err := disko.NewPlan(l, mode, st, disko.PlanOptions{}, &r)
		if !errors.Is(err, disko.ErrRootDisk) || exitcode.Of(err) != exitcode.Precondition {
			t.Errorf("mode %s on the root disk: %v; want ErrRootDisk, precondition", mode, err)
		}
	}
	// Mounting only is allowed: it changes nothing on the disk.
	if _, err := disko.NewPlan(l, disko.Mode{Mount: true}, st, disko.PlanOptions{}, nil); errors.Is(err, disko.ErrRootDisk) {
		t.Errorf("mount-only refused on the root disk: %v", err)
	}
	// The rescue agent may.
	if _, err := disko.NewPlan(l, disko.Mode{Format: true}, st, disko.PlanOptions{AllowRootDisk: true}, nil); err != nil {
		t.Errorf("AllowRootDisk still refused: %v", err)
	}
	if os.Geteuid() != 0 {
		return
	}
	// A plan made without state (elsewhere) is refused when executed.
	p, err := disko.NewPlan(l, disko.Mode{Format: true}, nil, disko.PlanOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &command.Recorder{}
	_, err = Execute(context.Background(), p, Options{Runner: rec})
	if !errors.Is(err, disko.ErrRootDisk) {
		t.Errorf("Execute on the root disk: %v; want ErrRootDisk", err)
	}
	if len(rec.Commands) != 0 {
		t.Errorf("commands ran before the refusal: %v", rec.Argvs())
	}
}
