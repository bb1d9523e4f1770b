//go:build linux

package facts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/agent"
)

// TestGatherMatchesProc gathers on this machine and checks the answers
// against the kernel's own files, read independently here.
func TestGatherMatchesProc(t *testing.T) {
	f, err := Gather(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range f.Warnings {
		t.Logf("warning: %s", w)
	}

	var memTotalKB uint64
	mi, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(string(mi), "MemTotal: %d kB", &memTotalKB); err != nil {
		t.Fatalf("scan /proc/meminfo: %v", err)
	}
	if f.Memory.TotalBytes != memTotalKB*1024 {
		t.Errorf("MemTotal %d, /proc/meminfo says %d kB", f.Memory.TotalBytes, memTotalKB)
	}
	if f.Memory.AvailableBytes == 0 || f.Memory.AvailableBytes > f.Memory.TotalBytes {
		t.Errorf("MemAvailable %d out of range (total %d)", f.Memory.AvailableBytes, f.Memory.TotalBytes)
	}
	if want := readTrim(t, "/proc/sys/kernel/random/boot_id"); f.BootID != want {
		t.Errorf("boot_id %q, want %q", f.BootID, want)
	}
	if want := readTrim(t, "/proc/sys/kernel/osrelease"); f.Kernel.Release != want {
		t.Errorf("kernel release %q, want %q", f.Kernel.Release, want)
	}
	if want := readTrim(t, "/proc/cmdline"); f.Kernel.Cmdline != want {
		t.Errorf("cmdline %q, want %q", f.Kernel.Cmdline, want)
	}
	if want := readTrim(t, "/proc/1/comm"); f.Init.Name != want {
		t.Errorf("init %q, want %q", f.Init.Name, want)
	}
	if h, _ := os.Hostname(); f.Hostname != h {
		t.Errorf("hostname %q, want %q", f.Hostname, h)
	}
	if f.Arch == "" || f.Machine == "" || f.CPUs < 1 {
		t.Errorf("arch %q machine %q cpus %d", f.Arch, f.Machine, f.CPUs)
	}
	if f.Boot.Firmware != "uefi" && f.Boot.Firmware != "bios" {
		t.Errorf("firmware %q", f.Boot.Firmware)
	}
	if _, err := os.Stat("/sys/firmware/efi"); (err == nil) != (f.Boot.Firmware == "uefi") {
		t.Errorf("firmware %q but /sys/firmware/efi stat: %v", f.Boot.Firmware, err)
	}
	if osr, err := os.ReadFile("/etc/os-release"); err == nil && !strings.Contains(string(osr), "ID="+f.OS.ID) {
		t.Errorf("os id %q not in /etc/os-release", f.OS.ID)
	}

	// Every /sys/block device is reported, except empty pseudo devices.
	disks := map[string]Disk{}
	for _, d := range f.Disks {
		disks[d.Name] = d
	}
	entries, err := os.ReadDir("/sys/block")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		size := readTrim(t, "/sys/block/"+e.Name()+"/size")
		d, ok := disks[e.Name()]
		if hidden, _ := os.ReadFile("/sys/block/" + e.Name() + "/hidden"); !ok && strings.TrimSpace(string(hidden)) == "1" {
			continue // NVMe multipath path device, deliberately left out
		}
		if !ok {
			if size != "0" {
				t.Errorf("/sys/block/%s (size %s sectors) missing from facts", e.Name(), size)
			}
			continue
		}
		if want := readTrim(t, "/sys/block/"+e.Name()+"/dev"); d.DevNum != want {
			t.Errorf("%s devnum %q, want %q", d.Name, d.DevNum, want)
		}
		if fmt.Sprint(d.SizeBytes/512) != size {
			t.Errorf("%s size %d bytes, sysfs %s sectors", d.Name, d.SizeBytes, size)
		}
	}
	if len(disks) > len(entries) {
		t.Errorf("%d disks reported, /sys/block has %d", len(disks), len(entries))
	}

	// When / is on a block device, the disk holding it says so.
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	rootDev := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	if _, err := os.Stat("/sys/dev/block/" + rootDev); err == nil {
		holders := 0
		for _, d := range f.Disks {
			if d.HoldsRoot {
				holders++
			}
		}
		if holders == 0 {
			t.Errorf("/ is on block device %s but no disk holds_root", rootDev)
		}
	}

	// Interfaces are those of /sys/class/net.
	nets, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	var gotNames, wantNames []string
	for _, it := range f.Network.Interfaces {
		gotNames = append(gotNames, it.Name)
		if it.Name == "lo" && !hasAddr(it, "127.0.0.1/8") {
			t.Errorf("lo without 127.0.0.1/8: %+v", it.Addresses)
		}
	}
	for _, e := range nets {
		if e.Name() != "bonding_masters" {
			wantNames = append(wantNames, e.Name())
		}
	}
	if !sameSet(gotNames, wantNames) {
		t.Errorf("interfaces %v, /sys/class/net has %v", gotNames, wantNames)
	}
}

// TestGatherListenersAndHostKeys opens a listener and checks it is found
// with this process as owner; host key fingerprints match ssh-keygen.
func TestGatherListenersAndHostKeys(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	f, _ := Gather(context.Background())
	comm := readTrim(t, "/proc/self/comm")
	found := false
	for _, ls := range f.SSH.Listening {
		if ls.Port == port && ls.Address == "127.0.0.1" {
			found = true
			if ls.Process != comm {
				t.Errorf("listener on %d owned by %q, want %q", port, ls.Process, comm)
			}
		}
	}
	if !found {
		t.Errorf("listener 127.0.0.1:%d not in %+v", port, f.SSH.Listening)
	}
	if len(f.SSH.Ports) == 0 || len(f.SSH.ConfigPorts) == 0 {
		t.Errorf("ssh ports %v config ports %v: want at least sshd's default", f.SSH.Ports, f.SSH.ConfigPorts)
	}

	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed: host key fingerprints not compared")
	}
	pubs, _ := filepath.Glob("/etc/ssh/ssh_host_*_key.pub")
	if len(pubs) != len(f.SSH.HostKeys) {
		t.Fatalf("%d host keys reported, %d files", len(f.SSH.HostKeys), len(pubs))
	}
	for _, k := range f.SSH.HostKeys {
		out, err := exec.Command(keygen, "-l", "-E", "sha256", "-f", k.Path).Output()
		if err != nil {
			t.Fatalf("ssh-keygen -l %s: %v", k.Path, err)
		}
		if !strings.Contains(string(out), " "+k.Fingerprint+" ") {
			t.Errorf("%s: fingerprint %s, ssh-keygen says %s", k.Path, k.Fingerprint, out)
		}
	}
}

// TestFactsJSONRoundTrip: what the agent encodes, the client decodes to
// the same value.
func TestFactsJSONRoundTrip(t *testing.T) {
	f, _ := Gather(context.Background())
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var back Facts
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, &back) {
		b2, _ := json.Marshal(&back)
		t.Errorf("JSON round trip changed facts:\n%s\n%s", b, b2)
	}
}

// inProcess is an agent.Runner that serves `... agent VERB` in this
// process, so agent.Call's decoding is exercised without SSH.
type inProcess struct{ cmds []string }

func (r *inProcess) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	r.cmds = append(r.cmds, cmd)
	f := strings.Fields(cmd)
	if len(f) < 2 || f[len(f)-2] != "agent" {
		return fmt.Errorf("not an agent command: %q", cmd)
	}
	if err := agent.NewTable(Handlers()).Serve(ctx, f[len(f)-1], stdin, stdout); err != nil {
		return &agent.ExitError{Status: 1}
	}
	return nil
}

// TestAgentVerbFacts goes through the agent protocol both ways: Serve's
// raw output is one step event then one result, and Call decodes it.
func TestAgentVerbFacts(t *testing.T) {
	var buf bytes.Buffer
	if err := agent.NewTable(Handlers()).Serve(context.Background(), "facts", strings.NewReader(""), &buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("agent wrote %d lines, want a step and a result:\n%s", len(lines), buf.String())
	}
	var last agent.Message
	if err := json.Unmarshal([]byte(lines[1]), &last); err != nil || last.Type != "result" {
		t.Fatalf("last line is not a result (%v): %s", err, lines[1])
	}

	r := &inProcess{}
	var events []agent.Event
	var f Facts
	if err := agent.Call(context.Background(), r, "/tmp/nivis", "facts", nil, &f, func(e agent.Event) { events = append(events, e) }); err != nil {
		t.Fatal(err)
	}
	if len(r.cmds) != 1 || r.cmds[0] != "/tmp/nivis agent facts" {
		t.Errorf("commands run: %q", r.cmds)
	}
	if len(events) != 1 || events[0].Step != "facts" {
		t.Errorf("events %+v, want one step", events)
	}
	if f.SchemaVersion != SchemaVersion || f.BootID != readTrim(t, "/proc/sys/kernel/random/boot_id") || len(f.Disks) == 0 {
		t.Errorf("decoded facts: schema %d boot %q disks %d", f.SchemaVersion, f.BootID, len(f.Disks))
	}
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func hasAddr(it Interface, cidr string) bool {
	for _, a := range it.Addresses {
		if a.CIDR == cidr {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return len(a) == len(b)
}
