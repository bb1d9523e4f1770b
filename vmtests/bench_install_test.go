//go:build linux

package vmtests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// TestBenchInstall is bench/install.sh's measurement, not a timed test:
// it runs only with NIVIS_BENCH=1. A guest is taken over with
// `nivis install --phases kexec,disko --no-reboot`, then, in the same
// rescue system and alternating, the install phase (bootloader none, so
// that both arms do the same work: unpack the system into /mnt) against
// `ssh host 'tar -x -C /mnt' < rootfs.tar` with OpenSSH (busybox's tar: the
// rescue system's u-root tar cannot make symlinks); before
// each arm the target is formatted again (`--phases disko`). A third arm
// adds `&& sync` to the baseline, since nivis's install phase ends with
// syncfs. It prints one BENCH line per figure.
func TestBenchInstall(t *testing.T) {
	Require(t)
	if os.Getenv("NIVIS_BENCH") != "1" {
		t.Skip("a benchmark: run bench/install.sh (NIVIS_BENCH=1)")
	}
	runs := 2
	if n, err := strconv.Atoi(os.Getenv("NIVIS_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	nivis := requireNivis(t)
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("the baseline needs a static busybox (apt-get install busybox-static)")
	}
	rf := TestRootfs(t)
	plain := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := unzstd(rf.Path, plain); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(plain)
	vm, _ := startInstallGuest(t)
	cfg := installConfig(t, "bios", rf, vm, "bootloader: grub", "bootloader: none")

	phase := func(out string, name string) string {
		m := regexp.MustCompile(`(?m)^\s+` + name + `\s+ok\s+([0-9.]+s)`).FindStringSubmatch(out)
		if m == nil {
			return "?"
		}
		return m[1]
	}
	_, errOut, code := installRun(t, nivis, vm, cfg, "--phases", "kexec,disko", "--no-reboot")
	if code != 0 {
		t.Fatalf("kexec,disko exited %d:\n%s", code, tail(errOut, 8000))
	}
	fmt.Printf("BENCH phase kexec %s\nBENCH phase disko %s\n", phase(errOut, "kexec"), phase(errOut, "disko"))
	// u-root's tar in the rescue system cannot extract symlinks, so the
	// baseline's tar is a static busybox sent over first.
	if err := sshStdin(vm, busybox, "cat > /tmp/busybox && chmod 755 /tmp/busybox"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("BENCH rootfs %d MiB tar, %d MiB zstd\n", st.Size()>>20, rf.Size>>20)

	// Warm-up, not counted: the first unpack after the kexec is much slower
	// whichever arm does it (a fresh guest's RAM is first touched then).
	if _, errOut, code := installRun(t, nivis, vm, cfg, "--phases", "disko", "--no-reboot"); code != 0 {
		t.Fatalf("disko exited %d:\n%s", code, tail(errOut, 8000))
	}
	start := time.Now()
	if err := sshStdin(vm, plain, "/tmp/busybox tar -x -C /mnt && /tmp/busybox sync"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("BENCH warmup %.1fs\n", time.Since(start).Seconds())

	arms := []string{"nivis", "openssh", "openssh+sync"}
	for i := 0; i < runs; i++ {
		// Each run starts with a different arm.
		order := append(append([]string(nil), arms[i%len(arms):]...), arms[:i%len(arms)]...)
		for _, arm := range order {
			if _, errOut, code := installRun(t, nivis, vm, cfg, "--phases", "disko", "--no-reboot"); code != 0 {
				t.Fatalf("disko exited %d:\n%s", code, tail(errOut, 8000))
			}
			start := time.Now()
			switch arm {
			case "nivis":
				_, errOut, code := installRun(t, nivis, vm, cfg, "--phases", "install", "--no-reboot")
				if code != 0 {
					t.Fatalf("install exited %d:\n%s", code, tail(errOut, 8000))
				}
			case "openssh":
				if err := sshStdin(vm, plain, "/tmp/busybox tar -x -C /mnt"); err != nil {
					t.Fatal(err)
				}
			case "openssh+sync":
				// nivis's install phase ends with syncfs (the data is on
				// disk before anyone reboots): the same for the baseline.
				if err := sshStdin(vm, plain, "/tmp/busybox tar -x -C /mnt && /tmp/busybox sync"); err != nil {
					t.Fatal(err)
				}
			}
			secs := time.Since(start).Seconds()
			files, _ := strictSSH(t, vm, false, "/tmp/busybox find /mnt -xdev | /tmp/busybox wc -l")
			fmt.Printf("BENCH run %d %s %.1fs files=%s\n", i+1, arm, secs, strings.TrimSpace(files))
		}
	}
}

func unzstd(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := zstd.NewReader(in)
	if err != nil {
		return err
	}
	defer zr.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := zr.WriteTo(out); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// sshStdin runs command in the guest with plain OpenSSH (strict host key
// checking), file as its stdin.
func sshStdin(vm *VM, file, command string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-p", strconv.Itoa(vm.Port), "-i", vm.KeyFile, "-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+vm.KnownHosts,
		SSHTarget, command)
	cmd.Stdin = f
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ssh %q: %v\n%s", command, err, out)
	}
	return nil
}
