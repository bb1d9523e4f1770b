//go:build linux

// Command vmimage builds (or finds in the cache) a nivis test guest image and
// prints where its files are, so scripts and people can boot it by hand.
//
//	go run ./vmtests/cmd/vmimage [-disk] [-packages a,b] [-extra-packages c] [-json] [-prune]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nivis/nivis/vmtests"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmimage:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := vmtests.DefaultSpec()
	fs := flag.NewFlagSet("vmimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	suite := fs.String("suite", def.Suite, "Debian suite")
	hostname := fs.String("hostname", def.Hostname, "guest hostname")
	rootMiB := fs.Int("root-mib", def.RootMiB, "root filesystem size in MiB")
	packages := fs.String("packages", strings.Join(def.Packages, ","), "comma-separated package list (replaces the default)")
	extra := fs.String("extra-packages", "", "comma-separated packages added to -packages")
	disk := fs.Bool("disk", false, "also make the bootable GPT disk (BIOS + UEFI)")
	asJSON := fs.Bool("json", false, "print the image as JSON")
	quiet := fs.Bool("q", false, "do not log build steps")
	prune := fs.Bool("prune", false, "delete every other cached image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	spec := vmtests.ImageSpec{Suite: *suite, Hostname: *hostname, RootMiB: *rootMiB, Packages: splitList(*packages)}
	spec.Packages = append(spec.Packages, splitList(*extra)...)
	logger := log.New(stderr, "", log.Ltime)
	o := vmtests.BuildOptions{Logf: logger.Printf}
	if *quiet {
		o.Logf = nil
	}
	img, err := vmtests.Build(ctx, spec, o)
	if err != nil {
		return err
	}
	if *prune {
		removed, err := vmtests.Prune(ctx, img)
		for _, d := range removed {
			fmt.Fprintln(stderr, "removed", d)
		}
		if err != nil {
			return err
		}
	}
	diskPath := ""
	if *disk {
		if diskPath, err = img.BootDisk(ctx); err != nil {
			return err
		}
	}
	out := struct {
		*vmtests.Image
		Dir      string `json:"dir"`
		RootFS   string `json:"rootfs"`
		Kernel   string `json:"kernel"`
		Initrd   string `json:"initrd"`
		KeyFile  string `json:"key_file"`
		Disk     string `json:"disk,omitempty"`
		CacheHit bool   `json:"cache_hit"`
	}{img, img.Dir, img.RootFS, img.Kernel, img.Initrd, img.KeyFile, diskPath, img.CacheHit}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	state := "built in " + img.Took.Round(1e9).String()
	if img.CacheHit {
		state = "cache hit"
	}
	fmt.Fprintf(stdout, "image   %s (%s)\nrootfs  %s\nkernel  %s (%s)\ninitrd  %s\nkey     %s\n",
		img.Key, state, img.RootFS, img.Kernel, img.KernelRelease, img.Initrd, img.KeyFile)
	if diskPath != "" {
		fmt.Fprintf(stdout, "disk    %s (root on %s)\n", diskPath, vmtests.DiskRootPartition)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
